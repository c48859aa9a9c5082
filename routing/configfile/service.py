"""Config import and export as single calls, shared by the command, the API and the console."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db import transaction

from audit.authority import SHELL_ACTOR, Actor, authorize_change
from audit.changesets import recording
from routing.configfile.diff import config_diff
from routing.configfile.export import export_yaml
from routing.configfile.live import apply_spec, live_spec, reference_errors
from routing.configfile.validate import ConfigInvalid, read_config


@dataclass(frozen=True)
class ImportResult:
    """What an import changed (or would change, on a dry run)."""

    changes: list[str]
    applied: bool
    change_set: str = ""  # the history's change set of an applied import


# The diff's line kinds (`+ role x`) -> the section of the table that kind belongs to.
_DIFF_SECTIONS = {"role": "roles", "service": "services", "route": "routes", "quota": "quotas"}
_DIFF_ACTIONS = {"+": "add", "~": "change", "-": "delete"}


def authorize_import(*, actor: Actor, changes: list[str]) -> None:
    """Each changed section needs the right to make that change directly (ChangeRefused)."""
    needed: dict[tuple[str, str], None] = {}
    for line in changes:
        sign, _, rest = line.partition(" ")
        kind = rest.split(" ", 1)[0]
        needed[(_DIFF_ACTIONS[sign], _DIFF_SECTIONS[kind])] = None
    for action, section in needed:
        authorize_change(actor, action, section)


def config_import(
    *,
    text: str,
    dry_run: bool = False,
    prune: bool = False,
    by: Any = None,
    via: str = "",
    actor: Actor = SHELL_ACTOR,
) -> ImportResult:
    """Validate `text` whole, then apply it atomically; ConfigInvalid lists every error.

    `actor` is who imports: the console and the API pass the caller's, so a section they
    may not change directly refuses the whole import (ChangeRefused); the command and
    in-process callers have shell access. An applied import is one change set in the
    history ("config import by <who>"), so it can be undone in one action.
    """
    reading = read_config(text)
    spec = reading.spec
    who = getattr(by, "get_username", lambda: "")() or getattr(by, "username", "") or via
    reason = f"config import by {who}" if who else "config import"
    with transaction.atomic(), recording(user=by, reason=reason) as change_set:
        live = live_spec()
        # The file's own errors and its references to the database: one report, in line order.
        errors = reading.errors + reference_errors(reading, live, prune=prune)
        if errors:
            raise ConfigInvalid(errors)
        changes = config_diff(live, spec, prune=prune)
        if dry_run or not changes:
            return ImportResult(changes=changes, applied=False)
        authorize_import(actor=actor, changes=changes)
        apply_spec(spec, live, prune=prune)
    return ImportResult(changes=changes, applied=True, change_set=change_set.id)


def config_export() -> str:
    """The live config as config-file YAML."""
    return export_yaml(live_spec())
