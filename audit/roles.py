"""The console's admin roles as Django groups: gateway-operator and gateway-viewer."""

from __future__ import annotations

from django.contrib.auth.models import Group
from django.contrib.auth.models import Permission as ModelPermission
from django.db.models import Q

from audit.registry import registrations

OPERATOR = "gateway-operator"
VIEWER = "gateway-viewer"

# The sections an operator may change: the traffic config.
OPERATOR_SECTIONS = frozenset({"services", "targets", "routes", "quotas"})
# Sections whose changes alter who administers the console: superusers only.
SUPERUSER_SECTIONS = frozenset({"console-roles"})


def console_apps() -> tuple[str, ...]:
    """Apps whose every model a viewer may look at (and an operator too): those that put a
    model in the table, except the superuser-only sections."""
    labels = [r.label.split(".")[0] for r in registrations() if r.section not in SUPERUSER_SECTIONS]
    return tuple(dict.fromkeys(labels))


def operator_models() -> tuple[tuple[str, str], ...]:
    """(app label, model) an operator may also add, change and delete: the recorded traffic
    config of the operator's sections, not people, roles or usage records."""
    return tuple(
        (app_label, model)
        for r in registrations()
        if r.history and r.section in OPERATOR_SECTIONS
        for app_label, model in [r.label.split(".")]
    )


def ensure_console_groups() -> dict[str, int]:
    """Create or refresh both groups' permissions (idempotent); permission count by group."""
    view = ModelPermission.objects.filter(
        content_type__app_label__in=console_apps(), codename__startswith="view_"
    )
    writes = Q()
    for app_label, model in operator_models():
        writes |= Q(content_type__app_label=app_label, content_type__model=model)
    operator_writes = ModelPermission.objects.filter(writes).exclude(codename__startswith="view_")
    viewer, _ = Group.objects.get_or_create(name=VIEWER)
    viewer.permissions.set(view)
    operator, _ = Group.objects.get_or_create(name=OPERATOR)
    operator.permissions.set([*view, *operator_writes])
    return {VIEWER: viewer.permissions.count(), OPERATOR: operator.permissions.count()}
