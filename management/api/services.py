"""Writes behind the management API: config entries checked and applied by the config file's code."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from django.db import IntegrityError, transaction
from django.db.models import Model, ProtectedError

from accounts.models import Role
from management.api.errors import Conflict, config_errors
from quotas.models import Quota
from routing.configfile.export import quota_entry, role_entry, route_entry, service_entry
from routing.configfile.live import (
    apply_quota,
    apply_role,
    apply_route,
    apply_service,
    missing_role_errors,
    missing_service_error,
    quota_spec,
    quota_subject_error,
    role_spec,
    route_spec,
    service_spec,
    validate_needs_openapi_error,
)
from routing.configfile.spec import route_key
from routing.configfile.validate import (
    ConfigInvalid,
    check_quota_entry,
    check_role_entry,
    check_route_entry,
    check_service_entry,
)
from routing.models import Route, Service

T = TypeVar("T")


def _checked(check: Callable[[Any], T], data: Any) -> T:
    """The spec of one config entry; 400 listing every problem."""
    try:
        return check(data)
    except ConfigInvalid as invalid:
        raise config_errors(invalid.errors) from None


def merged_entry(current: dict[str, Any], changes: Any) -> Any:
    """A PATCH: the current entry with the given keys replaced (null removes a key)."""
    if not isinstance(changes, dict):
        return changes  # the checker reports that it is not a mapping
    merged = dict(current)
    for key, value in changes.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    return merged


def entry_of(obj: Model) -> dict[str, Any]:
    """The config-file entry of a service, route, role or quota, plus its `id`."""
    if isinstance(obj, Service):
        entry = service_entry(service_spec(obj))
    elif isinstance(obj, Route):
        entry = route_entry(route_spec(obj))
    elif isinstance(obj, Role):
        entry = role_entry(role_spec(obj))
    elif isinstance(obj, Quota):
        entry = quota_entry(obj.subject, quota_spec(obj))
    else:
        raise TypeError(f"no config entry for {type(obj).__name__}")
    return {"id": obj.pk, **entry}


class saving:
    """An atomic block in which a unique-constraint race becomes a 409, not a 500."""

    def __enter__(self) -> None:
        self._atomic = transaction.atomic()
        self._atomic.__enter__()

    def __exit__(self, kind: Any, error: Any, traceback: Any) -> None:
        self._atomic.__exit__(kind, error, traceback)
        if isinstance(error, IntegrityError):
            raise Conflict("Another entry with the same identity exists.") from None


def service_save(*, data: Any, service: Service | None = None) -> Service:
    """Create or replace a service (with its targets) from a config-file entry."""
    values = _checked(check_service_entry, data)
    taken = Service.objects.filter(name=values.name)
    if service is not None:
        taken = taken.exclude(pk=service.pk)
    if taken.exists():
        raise Conflict(f"A service named '{values.name}' exists already.")
    with saving():
        return apply_service(values, service=service or Service())


def route_save(*, data: Any, route: Route | None = None) -> Route:
    """Create or replace a route from a config-file entry.

    Its service and each of its roles must exist (400 naming each missing one): a route never
    creates a role. Its permissions are created when missing (see live._permissions).
    """
    values = _checked(check_route_entry, data)
    documents = dict(Service.objects.filter(name=values.service).values_list("name", "openapi"))
    missing = missing_service_error(values.service, location="", known_services=set(documents))
    unknown = [*([missing] if missing else []), *missing_role_errors(values.roles)]
    if unknown:
        raise config_errors(unknown)
    no_document = validate_needs_openapi_error(
        values, location="", openapi=documents.get(values.service)
    )
    if no_document:
        raise config_errors([no_document])
    path, methods = route_key(values)
    taken = Route.objects.filter(path=path, methods=methods)
    if route is not None:
        taken = taken.exclude(pk=route.pk)
    if taken.exists():
        raise Conflict(f"A route for {methods or 'every method'} on {path} exists already.")
    try:
        with saving():
            return apply_route(values, route=route or Route())
    except ConfigInvalid as invalid:  # a role deleted since the check above
        raise config_errors(invalid.errors) from None


def role_save(*, data: Any, role: Role | None = None) -> Role:
    """Create or replace a role (with its permissions) from a config-file entry."""
    values = _checked(check_role_entry, data)
    taken = Role.objects.filter(name=values.name)
    if role is not None:
        taken = taken.exclude(pk=role.pk)
    if taken.exists():
        raise Conflict(f"A role named '{values.name}' exists already.")
    with saving():
        return apply_role(values, role=role or Role())


def quota_save(*, data: Any, quota: Quota | None = None) -> Quota:
    """Create or replace a quota from a config-file entry."""
    key, values = _checked(check_quota_entry, data)
    known_roles = set(Role.objects.filter(name=key[1]).values_list("name", flat=True))
    missing = quota_subject_error(key, location="", known_roles=known_roles)
    if missing:
        raise config_errors([missing])
    kind, name = key
    lookup = {"role": "role__name", "user": "user__username", "client": "client__name"}[kind]
    taken = Quota.objects.filter(**{lookup: name})
    if quota is not None:
        taken = taken.exclude(pk=quota.pk)
    if taken.exists():
        raise Conflict(f"A quota for {kind} '{name}' exists already.")
    try:
        with saving():
            return apply_quota(key, values, quota=quota or Quota())
    except ConfigInvalid as invalid:  # the role was deleted since the check above
        raise config_errors(invalid.errors) from None


def entry_delete(*, obj: Model) -> None:
    """Delete an entry; 409 when others still refer to it (a service with routes)."""
    try:
        with transaction.atomic():
            obj.delete()
    except ProtectedError:
        raise Conflict(
            f"{obj} is still used by routes; delete or move those routes first."
        ) from None
