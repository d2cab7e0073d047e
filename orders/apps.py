from django.apps import AppConfig


class OrdersConfig(AppConfig):
    name = "orders"
    verbose_name = "Orders and issuers"

    def ready(self):
        from orders import signals  # noqa: F401
