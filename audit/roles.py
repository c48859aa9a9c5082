"""The console's admin roles as Django groups: gateway-operator and gateway-viewer."""

from __future__ import annotations

from django.contrib.auth.models import Group
from django.contrib.auth.models import Permission as ModelPermission
from django.db.models import Q

OPERATOR = "gateway-operator"
VIEWER = "gateway-viewer"

# Apps whose every model a viewer may look at (and an operator too).
CONSOLE_APPS = ("routing", "accounts", "quotas", "oauth2_provider")
# What an operator may also add, change and delete: the traffic config, not people or roles.
OPERATOR_MODELS = (
    ("routing", "service"),
    ("routing", "target"),
    ("routing", "route"),
    ("quotas", "quota"),
)


def ensure_console_groups() -> dict[str, int]:
    """Create or refresh both groups' permissions (idempotent); permission count by group."""
    view = ModelPermission.objects.filter(
        content_type__app_label__in=CONSOLE_APPS, codename__startswith="view_"
    )
    writes = Q()
    for app_label, model in OPERATOR_MODELS:
        writes |= Q(content_type__app_label=app_label, content_type__model=model)
    operator_writes = ModelPermission.objects.filter(writes).exclude(codename__startswith="view_")
    viewer, _ = Group.objects.get_or_create(name=VIEWER)
    viewer.permissions.set(view)
    operator, _ = Group.objects.get_or_create(name=OPERATOR)
    operator.permissions.set([*view, *operator_writes])
    return {VIEWER: viewer.permissions.count(), OPERATOR: operator.permissions.count()}
