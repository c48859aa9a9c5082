"""Cluster status: each gateway process reports the config version it serves."""

from __future__ import annotations

import json
import logging
import os
import socket
from dataclasses import dataclass

from gateway_project.redis import redis_client, redis_key
from routing.clock import epoch_seconds

logger = logging.getLogger("gateway.nodes")

# A process that has not checked in for this long is shown as gone (and its entry expires).
CHECK_IN_TTL_SECONDS = 30
NODE_ID = f"{socket.gethostname()}:{os.getpid()}"
_STARTED_AT = epoch_seconds()
_local: dict[str, dict[str, object]] = {}
WORKER = "gateway worker"
HEALTH_CHECKER = "health checker"
# What this process does, shown beside it on the cluster page.
_role = [WORKER]


@dataclass(frozen=True)
class NodeStatus:
    """One gateway process as the console shows it."""

    node: str
    version: int
    checked_at: float
    started_at: float
    role: str = WORKER

    @property
    def seconds_since_check_in(self) -> float:
        """How long ago the process last checked the config version."""
        return max(0.0, epoch_seconds() - self.checked_at)


def set_process_role(role: str) -> None:
    """Name what this process does (e.g. HEALTH_CHECKER) on the cluster page."""
    _role[0] = role


def record_check_in(version: int) -> None:
    """Note that this process serves `version` (Redis for the cluster; in-process otherwise)."""
    global NODE_ID
    NODE_ID = f"{socket.gethostname()}:{os.getpid()}"  # a forked worker gets its own id
    entry: dict[str, object] = {
        "version": version,
        "checked_at": epoch_seconds(),
        "started_at": _STARTED_AT,
        "role": _role[0],
    }
    _local.clear()
    _local[NODE_ID] = entry
    client = redis_client()
    if client is None:
        return
    try:
        client.set(redis_key(f"node:{NODE_ID}"), json.dumps(entry), ex=CHECK_IN_TTL_SECONDS)
    except Exception:  # the console just shows fewer nodes; serving goes on
        logger.warning("could not record the check-in of %s in Redis", NODE_ID)


def list_nodes() -> list[NodeStatus]:
    """Every process that checked in recently, sorted by name."""
    entries: dict[str, dict[str, object]] = dict(_local)
    client = redis_client()
    if client is not None:
        try:
            keys = list(client.scan_iter(redis_key("node:*"), count=200))
            values = client.mget(keys) if keys else []
            prefix = len(redis_key("node:"))
            for key, value in zip(keys, values, strict=True):
                if value:
                    name = key.decode() if isinstance(key, bytes) else str(key)
                    entries[name[prefix:]] = json.loads(value)
        except Exception:
            logger.warning("could not list gateway nodes from Redis")
    return sorted(
        (
            NodeStatus(
                node=name,
                version=int(entry["version"]),  # type: ignore[call-overload]
                checked_at=float(entry["checked_at"]),  # type: ignore[arg-type]
                started_at=float(entry["started_at"]),  # type: ignore[arg-type]
                role=str(entry.get("role") or WORKER),
            )
            for name, entry in entries.items()
        ),
        key=lambda node: node.node,
    )
