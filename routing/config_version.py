"""The config version: bumped after every committed config change, polled by every worker."""

from __future__ import annotations

import logging

from django.db import transaction

from gateway_project.redis import redis_client, redis_key

logger = logging.getLogger("gateway.config")

_VERSION_KEY = "config_version"


def _publish(version: int) -> None:
    """Copy the version to Redis so workers can poll it without touching the database."""
    client = redis_client()
    if client is None:
        return
    try:
        client.set(redis_key(_VERSION_KEY), version)
    except Exception:  # Redis down: workers fall back to reading the database.
        logger.warning("could not publish config version %s to Redis", version)


def _published_version() -> int:
    """The version Redis holds now (0 without Redis or when it cannot be read)."""
    client = redis_client()
    if client is None:
        return 0
    try:
        return int(client.get(redis_key(_VERSION_KEY)) or 0)
    except Exception:
        return 0


def _bump() -> None:
    from routing.models import ConfigVersion

    # Never below what Redis published: after a database restore the row starts lower, and a
    # worker that compiled the published number must still see the version move.
    floor = _published_version()
    with transaction.atomic():
        row, _ = ConfigVersion.objects.select_for_update().get_or_create(pk=1)
        row.version = max(row.version, floor) + 1
        row.save(update_fields=["version", "updated_at"])
    _publish(row.version)


def schedule_bump() -> None:
    """Bump the version once the current transaction commits (once per transaction)."""
    connection = transaction.get_connection()
    if connection.in_atomic_block and any(
        callback is _bump for _, callback, _ in connection.run_on_commit
    ):
        return
    transaction.on_commit(_bump)


def database_version() -> int:
    """The version as stored in the database (the source of truth)."""
    from routing.models import ConfigVersion

    row = ConfigVersion.objects.filter(pk=1).values_list("version", flat=True).first()
    return row or 0


def current_version() -> int:
    """The latest version: from Redis when available, else from the database."""
    client = redis_client()
    if client is not None:
        try:
            value = client.get(redis_key(_VERSION_KEY))
        except Exception:
            value = None
            logger.warning("Redis unavailable; reading the config version from the database")
        if value is not None:
            return int(value)
    version = database_version()
    _publish(version)
    return version
