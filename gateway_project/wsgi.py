"""WSGI entry point for gunicorn."""

from __future__ import annotations

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gateway_project.settings")

from gateway_project import extensions
from gateway_project.dispatch import GatewayApplication

# Proxied requests take a lean middleware stack; the gateway's own pages the full one.
application = GatewayApplication(get_wsgi_application())

# Serving processes only (e.g. the usage flusher): what the apps registered in ready().
extensions.start_serving()
