"""The live config (from the database) as a ConfigSpec, and applying a spec to it."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import partial
from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction

from accounts.models import ApiClient, Permission, Role
from quotas.models import Quota
from routing.configfile.spec import (
    CacheSpec,
    CircuitBreakerSpec,
    ConfigSpec,
    CorsSpec,
    HeaderRulesSpec,
    HealthCheckSpec,
    QuotaKey,
    QuotaSpec,
    RateLimitSpec,
    RoleSpec,
    RouteSpec,
    ServiceSpec,
    TargetSpec,
)
from routing.configfile.validate import ConfigError, ConfigInvalid, ConfigReading
from routing.models import Route, Service, Target


def _unplaced(location: str, message: str) -> ConfigError:
    """An error at `location` without a line (a single entry of the management API)."""
    return ConfigError(location, None, message)


def service_spec(service: Service) -> ServiceSpec:
    """A service row as its spec (as check_service returns it)."""
    health = None
    if service.health_check_path:
        health = HealthCheckSpec(
            path=service.health_check_path,
            interval_ms=service.health_check_interval_ms or 10_000,
        )
    return ServiceSpec(
        name=service.name,
        url=service.url or None,
        # Registered targets come and go by themselves: they are not part of the config.
        targets=tuple(
            sorted(
                (
                    TargetSpec(url=t.url, weight=t.weight)
                    for t in service.targets.all()
                    if not t.registered
                ),
                key=lambda t: t.url,
            )
        ),
        openapi=service.openapi,
        health_check=health,
        connect_timeout_ms=service.connect_timeout_ms,
        load_balancing=service.load_balancing,
        description=service.description,
    )


def route_spec(route: Route) -> RouteSpec:
    """A route row as its spec (as check_route returns it)."""
    breaker = None
    if route.circuit_breaker_threshold:
        breaker = CircuitBreakerSpec(
            threshold=route.circuit_breaker_threshold,
            timeout_ms=route.circuit_breaker_timeout_ms or 60_000,
        )
    rate_limit = None
    if route.rate_limit_requests:
        rate_limit = RateLimitSpec(
            requests=route.rate_limit_requests,
            period=route.rate_limit_period,
            burst=route.rate_limit_burst,
            algorithm=route.rate_limit_algorithm,
            headers=route.rate_limit_headers,
        )
    return RouteSpec(
        path=route.path,
        methods=tuple(route.method_list),
        service=route.service.name,
        strip_prefix=route.strip_prefix,
        timeout_ms=route.timeout_ms,
        retry=route.retry,
        circuit_breaker=breaker,
        rate_limit=rate_limit,
        authentication=route.authentication,
        permissions=tuple(sorted(p.name for p in route.permissions.all())),
        roles=tuple(sorted(r.name for r in route.roles.all())),
        priority=route.priority,
        enabled=route.enabled,
        description=route.description,
        hide_credentials=route.hide_credentials,
        ip_allow=tuple(route.ip_allow or ()),
        ip_deny=tuple(route.ip_deny or ()),
        cors=CorsSpec.from_json(route.cors) if route.cors else None,
        request_headers=(
            HeaderRulesSpec.from_json(route.request_headers) if route.request_headers else None
        ),
        response_headers=(
            HeaderRulesSpec.from_json(route.response_headers) if route.response_headers else None
        ),
        validate=route.validate_requests,
        cache=CacheSpec(ttl_ms=route.cache_ttl_ms) if route.cache_ttl_ms else None,
        websocket=route.websocket,
    )


def live_spec() -> ConfigSpec:
    """The database's config as specs."""
    spec = ConfigSpec()
    for service in Service.objects.prefetch_related("targets"):
        spec.services[service.name] = service_spec(service)
    routes = Route.objects.select_related("service").prefetch_related("permissions", "roles")
    for route in routes:
        spec.routes[(route.path, route.methods)] = route_spec(route)
    for role in Role.objects.prefetch_related("permissions"):
        spec.roles[role.name] = role_spec(role)
    for quota in Quota.objects.select_related("role", "user", "client"):
        spec.quotas[quota.subject] = quota_spec(quota)
    return spec


def role_spec(role: Role) -> RoleSpec:
    """A role row as its spec (as check_role returns it)."""
    return RoleSpec(
        name=role.name,
        permissions=tuple(sorted(p.name for p in role.permissions.all())),
        description=role.description,
    )


def quota_spec(quota: Quota) -> QuotaSpec:
    """A quota row's limits as its spec (as check_quota returns them)."""
    return QuotaSpec(
        requests_per_day=quota.requests_per_day,
        requests_per_month=quota.requests_per_month,
    )


def missing_service_error(
    service: str,
    *,
    location: str,
    known_services: set[str],
    hint: str = "",
    error: Callable[[str, str], ConfigError] = _unplaced,
) -> ConfigError | None:
    """The error for a route naming a service that does not exist, else None."""
    if service in known_services:
        return None
    return error(
        f"{location}.service".lstrip("."),
        f"service '{service}' is not defined; add it under services:{hint}.",
    )


def validate_needs_openapi_error(
    route: RouteSpec,
    *,
    location: str,
    openapi: str | None,
    error: Callable[[str, str], ConfigError] = _unplaced,
) -> ConfigError | None:
    """The error for `validate: true` on a route whose service has no `openapi:`, else None.

    `openapi` is the service's document path ("" none; None: the service is unknown, which
    missing_service_error reports).
    """
    if not route.validate or openapi is None or openapi:
        return None
    return error(
        f"{location}.validate".lstrip("."),
        f"needs the service's OpenAPI document: give service '{route.service}' an openapi: "
        "path (e.g. /openapi.json), or drop validate.",
    )


def missing_role_error(
    role: str,
    *,
    location: str,
    known_roles: set[str],
    error: Callable[[str, str], ConfigError] = _unplaced,
) -> ConfigError | None:
    """The error for a route naming a role that does not exist, else None.

    A route never creates a role: a typo (`roles: [admn]`) would otherwise make a route that
    no caller can reach, silently. Roles come only from `roles:` entries (and the console/API).
    """
    if role in known_roles:
        return None
    return error(
        f"{location}.roles".lstrip("."),
        f"role '{role}' is not defined; add it under roles: or create the role first "
        "(a route never creates a role).",
    )


def missing_role_errors(
    roles: Iterable[str],
    *,
    location: str = "",
    error: Callable[[str, str], ConfigError] = _unplaced,
) -> list[ConfigError]:
    """An error for each of `roles` that is not in the database (one query), in their order."""
    wanted = list(dict.fromkeys(roles))
    known = set(Role.objects.filter(name__in=wanted).values_list("name", flat=True))
    problems = (
        missing_role_error(name, location=location, known_roles=known, error=error)
        for name in wanted
    )
    return [problem for problem in problems if problem]


def quota_subject_error(
    key: QuotaKey,
    *,
    location: str,
    known_roles: set[str],
    error: Callable[[str, str], ConfigError] = _unplaced,
) -> ConfigError | None:
    """The error for a quota naming a role, user or API client that does not exist, else None.

    A role exists when it is in `known_roles` (the file's and the database's): a quota never
    creates a role by itself, as a route never creates its service.
    """
    kind, name = key
    where = f"{location}.{kind}".lstrip(".")
    if kind == "role" and name not in known_roles:
        return error(
            where, f"role '{name}' is not defined; add it under roles: or create the role first."
        )
    if kind == "user" and not get_user_model().objects.filter(username=name).exists():
        return error(where, f"no user named '{name}'; create the user first.")
    if kind == "client" and not ApiClient.objects.filter(name=name).exists():
        return error(where, f"no API client named '{name}'; create the client first.")
    return None


def reference_errors(reading: ConfigReading, live: ConfigSpec, *, prune: bool) -> list[ConfigError]:
    """Errors for routes naming unknown services or roles, quotas naming unknown roles/users/clients.

    Each is placed at the line and column of the name in the file, so that they join the
    file's other errors in one report.
    """
    spec = reading.spec
    errors: list[ConfigError] = []
    known_services = reading.declared_services | (set() if prune else set(live.services))
    hint = " (--prune removes services not in the file)" if prune else ""
    for location, service in reading.service_refs:
        problem = missing_service_error(
            service,
            location=location.removesuffix(".service"),
            known_services=known_services,
            hint=hint,
            error=reading.error_at,
        )
        if problem:
            errors.append(problem)
    documents = {name: s.openapi for name, s in ({} if prune else live.services).items()}
    documents |= {name: s.openapi for name, s in spec.services.items()}
    for key, route in spec.routes.items():
        problem = validate_needs_openapi_error(
            route,
            location=reading.route_locations[key],
            openapi=documents.get(route.service),
            error=reading.error_at,
        )
        if problem:
            errors.append(problem)
    known_roles = reading.declared_roles | set(live.roles)
    for location, role in reading.role_refs:
        # Reported as the route's `roles` field, at the line and column of the name itself.
        problem = missing_role_error(
            role,
            location=location.rsplit(".roles[", 1)[0],
            known_roles=known_roles,
            error=partial(reading.error_at, at=location),
        )
        if problem:
            errors.append(problem)
    for location, key in reading.quota_refs:
        problem = quota_subject_error(
            key,
            location=location.rsplit(".", 1)[0],
            known_roles=known_roles,
            error=reading.error_at,
        )
        if problem:
            errors.append(problem)
    return errors


def _permissions(names: Iterable[str]) -> list[Permission]:
    """The permissions named, created when missing.

    Unlike a role, a permission is only a name: a route asks for it, a role or a token's
    `permissions` claim carries it. A JWT from an external issuer may carry permissions the
    database has never seen, and a route must be able to require them, so naming one is
    enough to make it exist. (A misspelt permission still locks a route; `gateway explain`
    shows what a route requires.)
    """
    return [Permission.objects.get_or_create(name=name)[0] for name in names]


def _roles(names: Iterable[str]) -> list[Role]:
    """The roles named; each must exist (ConfigInvalid otherwise): nothing here creates one.

    The callers check first (reference_errors, the management API); this is the last guard,
    so that no path through apply_* can create a role by naming it.
    """
    wanted = list(dict.fromkeys(names))
    found = {role.name: role for role in Role.objects.filter(name__in=wanted)}
    if len(found) < len(wanted):
        raise ConfigInvalid(missing_role_errors(wanted))
    return [found[name] for name in wanted]


def apply_service(values: ServiceSpec, *, service: Service | None = None) -> Service:
    """Write a service spec (and its targets): the named one, or `service` if given."""
    health = values.health_check
    fields = {
        "url": values.url or "",
        "openapi": values.openapi,
        "health_check_path": health.path if health else "",
        "health_check_interval_ms": health.interval_ms if health else None,
        "connect_timeout_ms": values.connect_timeout_ms,
        "load_balancing": values.load_balancing,
        "description": values.description,
    }
    if service is None:
        service, _ = Service.objects.update_or_create(name=values.name, defaults=fields)
    else:
        for name, value in (fields | {"name": values.name}).items():
            setattr(service, name, value)
        service.save()
    wanted = {t.url: t.weight for t in values.targets}
    service.targets.exclude(url__in=list(wanted)).exclude(registered=True).delete()
    for url, weight in wanted.items():
        Target.objects.update_or_create(
            service=service, url=url, defaults={"weight": weight, "registered": False}
        )
    return service


def route_fields(values: RouteSpec) -> dict[str, Any]:
    """A route spec as the Route row's field values (the service by name; m2m fields apart)."""
    breaker = values.circuit_breaker
    rate = values.rate_limit
    return {
        "path": values.path,
        "methods": ",".join(values.methods),
        "strip_prefix": values.strip_prefix,
        "timeout_ms": values.timeout_ms,
        "retry": values.retry,
        "circuit_breaker_threshold": breaker.threshold if breaker else None,
        "circuit_breaker_timeout_ms": breaker.timeout_ms if breaker else None,
        "rate_limit_requests": rate.requests if rate else None,
        "rate_limit_period": rate.period if rate else Route.RatePeriod.MINUTE,
        "rate_limit_burst": rate.burst if rate else None,
        "rate_limit_algorithm": rate.algorithm if rate else Route.RateAlgorithm.TOKEN_BUCKET,
        "rate_limit_headers": rate.headers if rate else True,
        "authentication": values.authentication,
        "priority": values.priority,
        "enabled": values.enabled,
        "description": values.description,
        "hide_credentials": values.hide_credentials,
        "ip_allow": list(values.ip_allow),
        "ip_deny": list(values.ip_deny),
        "cors": values.cors.to_json() if values.cors else None,
        "request_headers": values.request_headers.to_json() if values.request_headers else None,
        "response_headers": (
            values.response_headers.to_json() if values.response_headers else None
        ),
        "validate_requests": values.validate,
        "cache_ttl_ms": values.cache.ttl_ms if values.cache else None,
        "websocket": values.websocket,
    }


def apply_route(values: RouteSpec, *, route: Route | None = None) -> Route:
    """Write a route spec: the one with its path and methods, or `route` if given."""
    fields = route_fields(values) | {"service": Service.objects.get(name=values.service)}
    if route is None:
        identity = {"path": fields.pop("path"), "methods": fields.pop("methods")}
        route, _ = Route.objects.update_or_create(**identity, defaults=fields)
    else:
        for name, value in fields.items():
            setattr(route, name, value)
        route.save()
    route.permissions.set(_permissions(values.permissions))
    route.roles.set(_roles(values.roles))
    return route


def apply_role(values: RoleSpec, *, role: Role | None = None) -> Role:
    """Write a role spec: the named one, or `role` if given."""
    if role is None:
        role, _ = Role.objects.update_or_create(
            name=values.name, defaults={"description": values.description}
        )
    else:
        role.name, role.description = values.name, values.description
        role.save()
    role.permissions.set(_permissions(values.permissions))
    return role


def apply_quota(key: QuotaKey, values: QuotaSpec, *, quota: Quota | None = None) -> Quota:
    """Write a quota spec: the one for its subject, or `quota` if given."""
    kind, name = key
    subject: dict[str, Any] = {"role": None, "user": None, "client": None}
    if kind == "role":
        subject["role"] = _roles([name])[0]
    elif kind == "user":
        subject["user"] = get_user_model().objects.get(username=name)
    else:
        subject["client"] = ApiClient.objects.get(name=name)
    limits = {
        "requests_per_day": values.requests_per_day,
        "requests_per_month": values.requests_per_month,
    }
    if quota is None:
        chosen = {k: v for k, v in subject.items() if v is not None}
        quota, _ = Quota.objects.update_or_create(**chosen, defaults=limits)
    else:
        for field, value in (subject | limits).items():
            setattr(quota, field, value)
        quota.save()
    return quota


def apply_spec(spec: ConfigSpec, live: ConfigSpec, *, prune: bool) -> None:
    """Make the database match `spec` in one transaction (changed entries only)."""
    with transaction.atomic():
        for name, role in spec.roles.items():
            if live.roles.get(name) != role:
                apply_role(role)
        for name, service in spec.services.items():
            if live.services.get(name) != service:
                apply_service(service)
        for key, route in spec.routes.items():
            if live.routes.get(key) != route:
                apply_route(route)
        for key, quota in spec.quotas.items():
            if live.quotas.get(key) != quota:
                apply_quota(key, quota)
        if prune:
            for key in set(live.routes) - set(spec.routes):
                Route.objects.filter(path=key[0], methods=key[1]).delete()
            Service.objects.exclude(name__in=list(spec.services)).delete()
