from django.urls import path

from deployments import views

app_name = "deployments"

urlpatterns = [
    path("", views.deployment_list, name="deployment-list"),
    path("<int:pk>/", views.deployment_detail, name="deployment-detail"),
    path("<int:pk>/continue/", views.deployment_continue, name="deployment-continue"),
    path("<int:pk>/cancel/", views.deployment_cancel, name="deployment-cancel"),
    path("targets/", views.target_list, name="target-list"),
    path("targets/new/", views.target_create, name="target-create"),
    path("targets/<int:pk>/", views.target_detail, name="target-detail"),
    path("targets/<int:pk>/edit/", views.target_edit, name="target-edit"),
    path("targets/<int:pk>/host-key/", views.target_fetch_host_key, name="target-fetch-host-key"),
    path(
        "targets/<int:pk>/host-key/approve/",
        views.target_approve_host_key,
        name="target-approve-host-key",
    ),
    path("certificates/<int:pk>/", views.certificate_deployments, name="certificate-deployments"),
    path("certificates/<int:pk>/bindings/new/", views.binding_create, name="binding-create"),
    path("certificates/<int:pk>/deploy/", views.deployment_start, name="deployment-start"),
    path(
        "certificates/<int:pk>/rollback/", views.certificate_rollback, name="certificate-rollback"
    ),
    path("endpoints/", views.endpoint_list, name="endpoint-list"),
    path("endpoints/check/", views.endpoint_check, name="endpoint-check"),
    path("endpoints/new/", views.endpoint_create, name="endpoint-create"),
    path("endpoints/discover/", views.discover, name="discover"),
    path("fetch/<str:token>/", views.bundle_fetch, name="bundle-fetch"),
]
