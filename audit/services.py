"""Rollback: restore an object's earlier version, or undo a whole change set, as a new change."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction

from audit.authority import actor_for_user, authorize_change, section_for_model
from audit.changesets import recording
from audit.errors import RollbackRefused
from audit.registry import tracked_labels
from audit.selectors import change_set_records


def authorize_rollback(*, user: Any, model: Any) -> None:
    """A rollback re-adds, changes or deletes objects: the table's three rights on the model."""
    actor = actor_for_user(user)
    for action in ("add", "change", "delete"):
        authorize_change(actor, action, section_for_model(model))


@dataclass(frozen=True)
class RollbackResult:
    """The change set the rollback was recorded as, and what it did."""

    change_set: str
    restored: list[str]
    deleted: list[str]


def _refusal(name: str, error: ValidationError) -> RollbackRefused:
    if hasattr(error, "message_dict"):
        parts = [f"{field}: {' '.join(msgs)}" for field, msgs in error.message_dict.items()]
    else:
        parts = list(error.messages)
    return RollbackRefused(f"{name} cannot go back to that version: {'; '.join(parts)}")


def _state_of(record: Any) -> Any:
    """The version a record describes; a deletion row's fields are those just before it."""
    if record.history_type != "-":
        return record
    previous = record.prev_record
    if previous is None:
        raise RollbackRefused("That object has no earlier version to restore.")
    return previous


def _restore(state: Any) -> str:
    """Write `state` back through the model's own validation; m2m fields included."""
    instance = state.instance
    name = f"{instance._meta.verbose_name} {instance}"
    # An existing row is updated (its own unique values are not "taken"); a deleted one re-added.
    instance._state.adding = not type(instance)._default_manager.filter(pk=instance.pk).exists()
    try:
        instance.full_clean()
    except ValidationError as error:
        raise _refusal(name, error) from None
    wanted: dict[str, list[Any]] = {}
    for field in state._history_m2m_fields:
        target = field.m2m_reverse_field_name()
        ids = [getattr(row, f"{target}_id") for row in getattr(state, field.name).all()]
        existing = set(field.related_model.objects.filter(pk__in=ids).values_list("pk", flat=True))
        if len(existing) != len(set(ids)):
            raise RollbackRefused(
                f"{name} cannot go back to that version: some of its {field.name} were deleted "
                "since; restore them first."
            )
        wanted[field.name] = ids
    instance.save()
    for field_name, ids in wanted.items():
        getattr(instance, field_name).set(ids)
    return name


def restore_version(*, record: Any, user: Any, reason: str = "") -> RollbackResult:
    """Make the object look as `record` recorded it; the rollback is itself one change set."""
    authorize_rollback(user=user, model=record.instance_type)
    state = _state_of(record)
    label = f"{state.instance._meta.verbose_name} {state.instance}"
    when = record.history_date.strftime("%Y-%m-%d %H:%M:%S UTC")
    text = f"rollback of {label} to its version of {when}"
    by = getattr(user, "get_username", lambda: "")()
    text += f" by {by}" if by else ""
    text += f": {reason}" if reason else ""
    with transaction.atomic(), recording(user=user, reason=text) as change_set:
        restored = _restore(state)
    return RollbackResult(change_set=change_set.id, restored=[restored], deleted=[])


def undo_change_set(*, change_set: str, user: Any, reason: str = "") -> RollbackResult:
    """Put every object a change set touched back as it was before; one new change set."""
    records = change_set_records(change_set=change_set)
    if not records:
        raise RollbackRefused("That change set has no recorded changes.")
    for model in {record.instance_type for record in records}:
        authorize_rollback(user=user, model=model)
    first: dict[tuple[str, Any], Any] = {}
    for record in records:  # oldest first: the first row per object marks where it started
        first.setdefault((record.instance_type._meta.label_lower, record.id), record)
    for record in first.values():
        if record.prev_record is None and record.history_type != "+":
            raise RollbackRefused(
                f"{record.instance_type._meta.verbose_name} {record.instance} has no recorded "
                "version before that change set (it predates the history), so it cannot be "
                "put back; restore it by hand."
            )
    order = {label: index for index, label in enumerate(tracked_labels())}
    keys = sorted(first, key=lambda key: order[key[0]])
    by = getattr(user, "get_username", lambda: "")()
    text = f"undo of change set {change_set[:8]}"
    text += f" by {by}" if by else ""
    text += f": {reason}" if reason else ""
    restored: list[str] = []
    deleted: list[str] = []
    with transaction.atomic(), recording(user=user, reason=text) as new_set:
        for key in keys:
            before = first[key].prev_record
            if before is not None and before.history_type != "-":
                restored.append(_restore(before))
        for key in reversed(keys):
            before = first[key].prev_record
            if before is None or before.history_type == "-":
                model = first[key].instance_type
                obj = model._default_manager.filter(pk=key[1]).first()
                if obj is not None:
                    deleted.append(f"{model._meta.verbose_name} {obj}")
                    obj.delete()
    return RollbackResult(change_set=new_set.id, restored=restored, deleted=deleted)
