"""Config import and export as single calls, shared by the command, the API and the console."""

from __future__ import annotations

from dataclasses import dataclass

from django.db import transaction

from routing.configfile.diff import config_diff
from routing.configfile.export import export_yaml
from routing.configfile.live import apply_spec, check_references, live_spec
from routing.configfile.validate import parse_config


@dataclass(frozen=True)
class ImportResult:
    """What an import changed (or would change, on a dry run)."""

    changes: list[str]
    applied: bool


def config_import(*, text: str, dry_run: bool = False, prune: bool = False) -> ImportResult:
    """Validate `text` whole, then apply it atomically; ConfigInvalid lists every error."""
    spec = parse_config(text)
    with transaction.atomic():
        live = live_spec()
        check_references(spec, live, prune=prune)
        changes = config_diff(live, spec, prune=prune)
        if dry_run or not changes:
            return ImportResult(changes=changes, applied=False)
        apply_spec(spec, live, prune=prune)
    return ImportResult(changes=changes, applied=True)


def config_export() -> str:
    """The live config as config-file YAML."""
    return export_yaml(live_spec())
