"""Inventory URLs: browsing (views.py), downloads (downloads.py), upload (upload.py),
notifications (notifications_views.py)."""

from inventory import downloads, notifications_views, upload, views

app_name = "inventory"
urlpatterns = (
    views.urlpatterns + downloads.urlpatterns + upload.urlpatterns + notifications_views.urlpatterns
)
