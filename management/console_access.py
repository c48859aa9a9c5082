"""The console's doors held to the table in audit.authority: every model page and every page.

Django's admin asks each ModelAdmin `has_view/add/change/delete_permission`; `enforce_table`
puts the table in front of every registered ModelAdmin (ours and third-party ones), so a
new model page cannot skip it. A ModelAdmin's own, stricter answer (read-only history
pages) still applies on top.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib import admin
from django.contrib.admin.views.decorators import staff_member_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse

from audit.authority import NONE, console_actor, may, section_for_model

_ACTIONS = ("view", "add", "change", "delete")


def _guarded(model_admin: admin.ModelAdmin, action: str) -> Callable[..., bool]:
    name = f"has_{action}_permission"
    original = getattr(model_admin, name)
    # Only a ModelAdmin that narrows Django's default keeps a say; the default is replaced.
    overridden = getattr(type(model_admin), name) is not getattr(admin.ModelAdmin, name)

    def check(request: HttpRequest, *args: Any, **kwargs: Any) -> bool:
        # Django passes the object positionally or as obj= (the autocomplete view does).
        target = args[0] if args else kwargs.get("obj")
        section = section_for_model(model_admin.model)  # registered by apps' ready(), any order
        if not may(console_actor(request), action, section, target=target):
            return False
        return bool(original(request, *args, **kwargs)) if overridden else True

    return check


def guard_model_admin(model_admin: admin.ModelAdmin) -> None:
    """Make one ModelAdmin answer its permission questions from the table."""
    if getattr(model_admin, "_gateway_table", False):
        return
    for action in _ACTIONS:
        setattr(model_admin, f"has_{action}_permission", _guarded(model_admin, action))

    def module(request: HttpRequest) -> bool:
        return console_actor(request).level != NONE

    original_actions = model_admin.get_actions

    def actions(request: HttpRequest) -> Any:
        # An action without allowed_permissions would be offered to anyone who may view the
        # list (Django's default): it changes objects, so it needs the table's change right.
        offered = original_actions(request)
        if may(console_actor(request), "change", section_for_model(model_admin.model)):
            return offered
        return {
            name: entry
            for name, entry in offered.items()
            if entry is not None and getattr(entry[0], "allowed_permissions", None)
        }

    model_admin.get_actions = actions  # type: ignore[method-assign]

    model_admin.has_module_permission = module  # type: ignore[method-assign]
    model_admin._gateway_table = True  # type: ignore[attr-defined]


def enforce_table(site: admin.AdminSite) -> None:
    """Guard every ModelAdmin registered on `site` (called once the admin is loaded)."""
    for model_admin in site._registry.values():
        guard_model_admin(model_admin)


def console_page(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """A console page: staff login, then at least the table's view right (403 page else)."""

    @wraps(view)
    def page(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if console_actor(request).level == NONE:
            raise PermissionDenied
        return view(request, *args, **kwargs)

    return staff_member_required(page)
