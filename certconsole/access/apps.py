from django.apps import AppConfig


class AccessConfig(AppConfig):
    name = "certconsole.access"
    label = "access"
    verbose_name = "Projects and access"
