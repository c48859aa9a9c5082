"""Settings that every proxied request reads, remembered until a setting changes.

Each `settings.NAME` goes through Django's LazyObject `__getattribute__`, a Python function that
also looks the value up for a `_mask_wrapped` flag (a raised and caught AttributeError for a
plain value): about 2,500 instructions a read. The values here are read once and kept until
Django's `setting_changed` (sent by `override_settings` and pytest-django's `settings`).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.signals import setting_changed

_remembered: dict[str, Any] = {}


def hot_setting(name: str) -> Any:
    """`settings.<name>`, read once until a setting changes."""
    remembered = _remembered
    try:
        return remembered[name]
    except KeyError:
        value = remembered[name] = getattr(settings, name)
        return value


def _forget(**_kwargs: Any) -> None:
    # A new dict, not clear(): a read that began under the old settings stores its value in the
    # dict it started with, which is now no one's memory.
    global _remembered
    _remembered = {}


setting_changed.connect(_forget, dispatch_uid="gateway-hot-settings")
