"""The difference between two ConfigSpecs, as lines a person reads."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import yaml

from routing.configfile.export import quota_entry, role_entry, route_entry, service_entry
from routing.configfile.spec import ConfigSpec, route_label

# A key the entry leaves out holds its default.
_UNSET = "(default)"


def _changes(old: dict[str, Any], new: dict[str, Any]) -> str:
    """`key: old -> new` for each config-file key that differs, in the entry's key order."""
    keys = [*new, *(key for key in old if key not in new)]
    return ", ".join(
        f"{key}: {_shown(old.get(key, _UNSET))} -> {_shown(new.get(key, _UNSET))}"
        for key in keys
        if old.get(key, _UNSET) != new.get(key, _UNSET)
    )


def _shown(value: Any) -> str:
    """A value as the config file spells it, on one line (`30s`, `[GET, POST]`, `{ttl: 1m}`)."""
    if value is _UNSET:
        return value
    text = yaml.safe_dump(value, default_flow_style=True, width=10**6, sort_keys=False)
    return text.removesuffix("\n").removesuffix("\n...")


def _section(
    kind: str,
    live: dict[Any, Any],
    wanted: dict[Any, Any],
    label: Callable[[Any], str],
    entry: Callable[[Any, Any], dict[str, Any]],
    prune: bool,
) -> list[str]:
    lines = []
    for key, values in wanted.items():
        current = live.get(key)
        if current is None:
            lines.append(f"+ {kind} {label(key)}")
        elif current != values:
            lines.append(
                f"~ {kind} {label(key)}: {_changes(entry(key, current), entry(key, values))}"
            )
    if prune:
        lines.extend(f"- {kind} {label(key)}" for key in live if key not in wanted)
    return lines


def config_diff(live: ConfigSpec, wanted: ConfigSpec, *, prune: bool) -> list[str]:
    """Lines `+ added`, `~ changed: key: old -> new`, `- removed` (removals with prune).

    Changed keys are named and spelled as in the config file (`timeout: 20s -> 5s`).
    """
    return [
        *_section("role", live.roles, wanted.roles, str, lambda _, v: role_entry(v), False),
        *_section(
            "service", live.services, wanted.services, str, lambda _, v: service_entry(v), prune
        ),
        *_section(
            "route", live.routes, wanted.routes, route_label, lambda _, v: route_entry(v), prune
        ),
        *_section(
            "quota", live.quotas, wanted.quotas, lambda k: f"{k[0]} {k[1]}", quota_entry, False
        ),
    ]
