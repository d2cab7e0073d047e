"""Orders URLs (mounted at /orders/); the HTTP-01 path is mounted at the site root."""

from orders import ca_views
from orders.views import app_name, urlpatterns

urlpatterns = urlpatterns + ca_views.urlpatterns  # private CAs and external CA orders

__all__ = ["app_name", "urlpatterns"]
