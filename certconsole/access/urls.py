from django.urls import path

from certconsole.access import preferences, views

app_name = "access"
urlpatterns = [
    path("", views.project_list, name="project-list"),
    path("new/", views.project_create, name="project-create"),
    path("switch/", views.switch_project, name="switch-project"),
    path("<slug:slug>/", views.project_detail, name="project-detail"),
    path("<slug:slug>/members/add/", views.member_add, name="member-add"),
    path(
        "<slug:slug>/members/<int:membership_id>/remove/",
        views.member_remove,
        name="member-remove",
    ),
]
urlpatterns += preferences.urlpatterns
