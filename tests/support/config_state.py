"""Keep the config version in Redis consistent with a test database that was just flushed."""

from __future__ import annotations

from gateway_project.redis import redis_client, redis_key


def forget_published_config_version() -> None:
    """Drop the version a previous test published, before servers of this test start.

    A transactional test's flush empties the database, whose config version then starts again
    at 1, while Redis still holds the last number published. A node that compiled its table at
    that stale number would take the new version 1, 2, ... for one it already has and keep
    serving an old table. Without the key, nodes read the version from the database.
    """
    client = redis_client()
    if client is not None:
        client.delete(redis_key("config_version"))
