"""The URLconf of proxied requests (gateway_project/dispatch.py): the proxy view, nothing else."""

from __future__ import annotations

from django.urls import re_path

from routing.views import ProxyView

handler400 = "gateway_project.errors.handler400"
handler403 = "gateway_project.errors.handler403"
handler404 = "gateway_project.errors.handler404"
handler500 = "gateway_project.errors.handler500"

urlpatterns = [re_path(r"", ProxyView.as_view(), name="proxy")]
