"""The difference between two ConfigSpecs, as lines a person reads."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from routing.configfile.spec import ConfigSpec, Spec, route_label


def _changes(old: Spec, new: Spec) -> str:
    changed = [
        (f.name, getattr(old, f.name), getattr(new, f.name))
        for f in dataclasses.fields(new)  # type: ignore[arg-type]
        if getattr(old, f.name) != getattr(new, f.name)
    ]
    return ", ".join(
        f"{name}: {_shown(before)} -> {_shown(after)}" for name, before, after in changed
    )


def _shown(value: Any) -> str:
    """A value as the config file would spell it (lists, mappings), for the diff line."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return repr({k: _plain(v) for k, v in dataclasses.asdict(value).items()})
    return repr(_plain(value))


def _plain(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _section(
    kind: str,
    live: dict[Any, Any],
    wanted: dict[Any, Any],
    label: Callable[[Any], str],
    prune: bool,
) -> list[str]:
    lines = []
    for key, values in wanted.items():
        current = live.get(key)
        if current is None:
            lines.append(f"+ {kind} {label(key)}")
        elif current != values:
            lines.append(f"~ {kind} {label(key)}: {_changes(current, values)}")
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
