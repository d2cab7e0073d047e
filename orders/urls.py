"""Orders URLs (mounted at /orders/); the HTTP-01 path is mounted at the site root."""

from orders.views import app_name, urlpatterns

__all__ = ["app_name", "urlpatterns"]
