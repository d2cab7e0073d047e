from django.apps import AppConfig


class AccessConfig(AppConfig):
    name = "certconsole.access"
    label = "access"
    verbose_name = "Projects and access"

    def ready(self):
        from certconsole.access import reauth  # noqa: F401  (connects the sign-in receiver)
