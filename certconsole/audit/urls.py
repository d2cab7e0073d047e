from django.urls import path

from certconsole.audit import views

app_name = "audit"
urlpatterns = [
    path("", views.event_list, name="event-list"),
    path("<int:pk>/", views.event_detail, name="event-detail"),
    path("export.csv", views.event_export, {"fmt": "csv"}, name="event-export-csv"),
    path("export.jsonl", views.event_export, {"fmt": "jsonl"}, name="event-export-jsonl"),
]
