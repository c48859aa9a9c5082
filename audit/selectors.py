"""Reading history: which models are tracked, their rows, and the diff each row made."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.apps import apps
from django.core.exceptions import ObjectDoesNotExist
from django.db.models import Model

from audit.registry import tracked_labels

HISTORY_TYPES = {"+": "created", "~": "changed", "-": "deleted"}


def tracked_models() -> list[type[Model]]:
    """The models whose every change is recorded, in dependency order (as registered)."""
    return [apps.get_model(label) for label in tracked_labels()]


def model_for_label(label: str) -> type[Model] | None:
    """A tracked model from 'app_label.model_name' (lower case), or None."""
    for model in tracked_models():
        if model._meta.label_lower == label:
            return model
    return None


@dataclass(frozen=True)
class FieldChange:
    """One field's value before and after a recorded change."""

    field: str
    old: str
    new: str


@dataclass(frozen=True)
class HistoryEntry:
    """A history row with what it changed, ready for a template."""

    record: Any
    model_label: str
    verbose_name: str
    action: str
    changes: list[FieldChange]
    # False for the object's newest version (restoring it would change nothing); a deletion
    # row stays restorable: restoring it adds the object back.
    restorable: bool = True

    @property
    def object_repr(self) -> str:
        """The object's name at the time of the change."""
        return describe(self.record)


def _text(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(sorted(_m2m_text(item) for item in value)) or "(none)"
    if value is None or value == "":
        return "(empty)"
    return str(value)


def _m2m_text(row: Any) -> str:
    # Through rows as dicts: show the target object's id by its non-owner key.
    if isinstance(row, dict):
        return ", ".join(f"{key}={value}" for key, value in row.items())
    return str(row)


def _m2m_names(record: Any) -> dict[str, str]:
    """The record's many-to-many values as readable names, by field."""
    names: dict[str, str] = {}
    for field in record._history_m2m_fields:
        target_name = field.m2m_reverse_field_name()
        rows = getattr(record, field.name).select_related(target_name)
        labels = sorted(str(getattr(row, target_name, "") or "(deleted)") for row in rows)
        names[field.name] = ", ".join(labels) or "(none)"
    return names


def _tracked_names(record: Any) -> set[str]:
    return {field.name for field in record.tracked_fields if field.editable}


def _value(record: Any, field: Any) -> Any:
    """A field's value; a foreign key as its object's name (or its id, once deleted)."""
    if field.is_relation:
        try:
            return getattr(record, field.name)
        except ObjectDoesNotExist:
            return f"#{getattr(record, field.attname)} (deleted)"
    return getattr(record, field.attname)


def describe(record: Any) -> str:
    """The object's name as the record has it (even if something it names is gone)."""
    try:
        return str(record.instance)
    except ObjectDoesNotExist:
        return f"#{record.id}"


def changes_of(record: Any) -> list[FieldChange]:
    """What `record` changed against the previous row of the same object."""
    previous = record.prev_record
    m2m = {field.name for field in record._history_m2m_fields}
    if previous is None or record.history_type == "-":
        if record.history_type == "-":
            return []
        fields = [
            f for f in record._meta.fields if f.name in _tracked_names(record) and f.name != "id"
        ]
        values = {field.name: _value(record, field) for field in fields}
        changes = [
            FieldChange(name, "", _text(value))
            for name, value in values.items()
            if value not in (None, "")
        ]
        new_names = _m2m_names(record)
        changes += [FieldChange(name, "", text) for name, text in new_names.items()]
        return changes
    delta = record.diff_against(previous)
    changes = []
    old_names = _m2m_names(previous) if m2m else {}
    new_names = _m2m_names(record) if m2m else {}
    for change in delta.changes:
        if change.field in m2m:
            changes.append(
                FieldChange(change.field, old_names[change.field], new_names[change.field])
            )
        else:
            changes.append(FieldChange(change.field, _text(change.old), _text(change.new)))
    return changes


def entry_for(record: Any) -> HistoryEntry:
    """A history row with its diff."""
    meta = record.instance_type._meta
    return HistoryEntry(
        record=record,
        model_label=meta.label_lower,
        verbose_name=str(meta.verbose_name),
        action=HISTORY_TYPES.get(record.history_type, record.history_type),
        changes=changes_of(record),
        restorable=record.history_type == "-" or record.next_record is not None,
    )


def object_history(*, model: type[Model], pk: Any, limit: int = 100) -> list[HistoryEntry]:
    """The object's recorded changes, newest first."""
    rows = model.history.filter(id=pk).select_related("history_user")[:limit]  # type: ignore[attr-defined]
    return [entry_for(record) for record in rows]


def recent_changes(
    *, models: list[type[Model]] | None = None, change_set: str | None = None, limit: int = 100
) -> list[HistoryEntry]:
    """The newest recorded changes across the tracked models (or one change set's rows)."""
    records: list[Any] = []
    for model in models if models is not None else tracked_models():
        rows = model.history.select_related("history_user")  # type: ignore[attr-defined]
        if change_set:
            rows = rows.filter(change_set=change_set)
        records.extend(rows.order_by("-history_date", "-history_id")[:limit])
    records.sort(key=lambda record: (record.history_date, record.history_id), reverse=True)
    return [entry_for(record) for record in records[:limit]]


def change_set_records(*, change_set: str) -> list[Any]:
    """Every history row of a change set, oldest first, across the tracked models."""
    records: list[Any] = []
    for model in tracked_models():
        records.extend(model.history.filter(change_set=change_set))  # type: ignore[attr-defined]
    records.sort(key=lambda record: (record.history_date, record.history_id))
    return records
