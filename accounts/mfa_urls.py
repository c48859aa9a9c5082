"""The console's two-factor pages, under /admin/mfa/."""

from __future__ import annotations

from django.urls import path

from accounts import mfa_views

urlpatterns = [
    path("", mfa_views.setup, name="console-mfa-setup"),
    path("verify/", mfa_views.verify, name="console-mfa-verify"),
    path("devices/", mfa_views.devices, name="console-mfa-devices"),
    path("devices/<int:user_id>/reset/", mfa_views.reset, name="console-mfa-reset"),
]
