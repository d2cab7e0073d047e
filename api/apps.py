from django.apps import AppConfig


class ApiConfig(AppConfig):
    name = "api"
    verbose_name = "REST API, bundle fetch and metrics"
    default_auto_field = "django.db.models.BigAutoField"
