"""Friendly error pages (the CSRF failure view is set in settings)."""

from django.shortcuts import render


def csrf_failure(request, reason=""):
    """A tampered, missing or replayed CSRF token: say so plainly, with a way back."""
    return render(request, "403_csrf.html", {"reason": reason}, status=403)
