"""The difference between two ConfigSpecs, as lines a person reads."""

from __future__ import annotations

from typing import Any

from routing.configfile.spec import ConfigSpec, public_values, route_label


def _changes(old: dict[str, Any], new: dict[str, Any]) -> str:
    fields = [key for key in new if old.get(key) != new.get(key)]
    return ", ".join(f"{key}: {old.get(key)!r} -> {new.get(key)!r}" for key in fields)


def _section(
    kind: str,
    live: dict[Any, dict[str, Any]],
    wanted: dict[Any, dict[str, Any]],
    label: Any,
    prune: bool,
) -> list[str]:
    lines = []
    for key, values in wanted.items():
        current = live.get(key)
        public = public_values(values)
        if current is None:
            lines.append(f"+ {kind} {label(key)}")
        elif current != public:
            lines.append(f"~ {kind} {label(key)}: {_changes(current, public)}")
    if prune:
        lines.extend(f"- {kind} {label(key)}" for key in live if key not in wanted)
    return lines


def config_diff(live: ConfigSpec, wanted: ConfigSpec, *, prune: bool) -> list[str]:
    """Lines `+ added`, `~ changed: field: old -> new`, `- removed` (removals with prune)."""
    return [
        *_section("role", live.roles, wanted.roles, str, False),
        *_section("service", live.services, wanted.services, str, prune),
        *_section("route", live.routes, wanted.routes, route_label, prune),
        *_section("quota", live.quotas, wanted.quotas, lambda k: f"{k[0]} {k[1]}", False),
    ]
