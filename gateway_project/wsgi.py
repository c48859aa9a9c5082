"""WSGI entry point for gunicorn."""

from __future__ import annotations

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gateway_project.settings")

from gateway_project.dispatch import GatewayApplication

# Proxied requests take a lean middleware stack; the gateway's own pages the full one.
application = GatewayApplication(get_wsgi_application())

# Serving processes only: move usage counts into the database in the background.
from quotas.flusher import start_background_flusher  # noqa: E402

start_background_flusher()
