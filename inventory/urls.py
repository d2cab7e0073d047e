"""Inventory URLs: browsing (views.py), downloads (downloads.py), upload (upload.py)."""

from inventory import downloads, upload, views

app_name = "inventory"
urlpatterns = views.urlpatterns + downloads.urlpatterns + upload.urlpatterns
