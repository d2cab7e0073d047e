from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "certconsole.audit"
    label = "audit"
    verbose_name = "Audit log"

    def ready(self):
        from certconsole.audit import signals  # noqa: F401
