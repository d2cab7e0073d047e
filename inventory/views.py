"""Browsing the inventory (helper A replaces this placeholder)."""

from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.urls import path


@login_required
def certificate_list(request):
    return HttpResponse("placeholder")


urlpatterns: list = [path("", certificate_list, name="certificate-list")]
