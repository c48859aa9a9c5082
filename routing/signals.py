"""Every committed change to what the route table is compiled from bumps the config version."""

from __future__ import annotations

from typing import Any

from django.db.models.signals import m2m_changed, post_delete, post_save

from routing.config_version import schedule_bump


def _changed(sender: Any, **kwargs: Any) -> None:
    if kwargs.get("raw"):  # loaddata: fixtures are loaded outside the normal flow
        return
    schedule_bump()


def _m2m_changed(sender: Any, action: str, **kwargs: Any) -> None:
    if action in ("post_add", "post_remove", "post_clear"):
        schedule_bump()


def connect() -> None:
    """Connect the bump to the models the route table is compiled from."""
    from accounts.models import ApiClient, Permission, Role
    from quotas.models import Quota
    from routing.models import Route, Service, Target

    for model in (Service, Target, Route, Role, Permission, Quota, ApiClient):
        post_save.connect(_changed, sender=model, dispatch_uid=f"bump-{model.__name__}-save")
        post_delete.connect(_changed, sender=model, dispatch_uid=f"bump-{model.__name__}-del")
    for through in (Route.permissions.through, Route.roles.through, Role.permissions.through):
        m2m_changed.connect(_m2m_changed, sender=through, dispatch_uid=f"bump-{through.__name__}")
