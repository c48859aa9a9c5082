"""Self-registration of service targets: register, heartbeat (lease), deregister.

A registered target is a Target row (registered=True), so routes, the console and the config
version treat it like any other. Its lease is kept in the shared state (Redis) and in
`lease_expires_at`, which a heartbeat rewrites only once half the lease has passed: heartbeats
do not write the database each time, and a lapsed lease takes the target out of rotation
without any write at all (the balancer compares the lease with the clock).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.db import transaction

from gateway_project.errors import GatewayError
from routing.clock import epoch_seconds
from routing.models import Service, Target
from routing.resilience_errors import TargetNotRegistered
from routing.target_state import resilience_state, target_key


def _now() -> dt.datetime:
    """Now as an aware UTC datetime, from the routing clock the balancer compares leases with."""
    return dt.datetime.fromtimestamp(epoch_seconds(), tz=dt.UTC)


class RegistrationConflict(GatewayError):
    """The service or target is configured statically and cannot be registered over."""

    status_code = 409
    default_code = "registration_conflict"
    default_detail = "That service or target is configured statically."
    title = "Conflict"


@dataclass(frozen=True)
class Lease:
    """A registered target and when its lease ends."""

    service: str
    url: str
    weight: int
    ttl_ms: int
    expires_at: dt.datetime
    created: bool = False


def target_register(*, service: str, url: str, weight: int, ttl_ms: int) -> Lease:
    """Register (or re-register) `url` as a target of `service`, creating the service."""
    expires = _now() + dt.timedelta(milliseconds=ttl_ms)
    with transaction.atomic():
        svc, _ = Service.objects.select_for_update().get_or_create(
            name=service, defaults={"description": "Created by self-registration."}
        )
        if svc.url:
            raise RegistrationConflict(
                f"Service {service} has a fixed url; give it targets instead to register more."
            )
        target = Target.objects.filter(service=svc, url=url).first()
        created = target is None
        if target is not None and not target.registered:
            raise RegistrationConflict(f"{url} is a static target of {service}.")
        if target is None or target.weight != weight or target.lease_ttl_ms != ttl_ms:
            # A new target or a new weight changes the route table: save() bumps the version.
            target = target or Target(service=svc, url=url, registered=True)
            target.weight = weight
            target.lease_ttl_ms = ttl_ms
            target.lease_expires_at = expires
            target.save()
        else:
            Target.objects.filter(pk=target.pk).update(lease_expires_at=expires)
    resilience_state.extend_lease(target_key(service, url), expires.timestamp())
    return Lease(service, url, weight, ttl_ms, expires, created)


def target_heartbeat(*, service: str, url: str) -> Lease:
    """Extend a registered target's lease by its TTL (one database read, rarely a write)."""
    row = (
        Target.objects.filter(service__name=service, url=url, registered=True)
        .values("pk", "weight", "lease_ttl_ms", "lease_expires_at")
        .first()
    )
    if row is None:
        raise TargetNotRegistered()
    ttl_ms = row["lease_ttl_ms"] or 30_000
    now = _now()
    expires = now + dt.timedelta(milliseconds=ttl_ms)
    shared = resilience_state.extend_lease(target_key(service, url), expires.timestamp())
    stored = row["lease_expires_at"]
    half_gone = stored is None or stored - now < dt.timedelta(milliseconds=ttl_ms / 2)
    if half_gone or not shared:
        # update() sends no signal: a heartbeat never recompiles the route table.
        Target.objects.filter(pk=row["pk"]).update(lease_expires_at=expires)
    return Lease(service, url, row["weight"], ttl_ms, expires)


def target_deregister(*, service: str, url: str) -> None:
    """Remove a registered target from rotation and from the database."""
    deleted, _ = Target.objects.filter(service__name=service, url=url, registered=True).delete()
    if not deleted:
        raise TargetNotRegistered()
    resilience_state.drop_target(target_key(service, url))
