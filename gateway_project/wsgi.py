"""WSGI entry point for gunicorn."""

from __future__ import annotations

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gateway_project.settings")

application = get_wsgi_application()

# Serving processes only: move usage counts into the database in the background.
from quotas.flusher import start_background_flusher  # noqa: E402

start_background_flusher()
