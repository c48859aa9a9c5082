"""Change sets: the history rows one action wrote, grouped so they can be undone together."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from django.contrib.auth import get_user_model


@dataclass
class ChangeSet:
    """The id, author and reason stamped on every history row written inside `recording`.

    Mutable on purpose: a console form names its reason after the request opened the set.
    """

    id: str
    user: Any = None
    reason: str = ""


_current: ContextVar[ChangeSet | None] = ContextVar("audit_change_set", default=None)


def current_change_set() -> ChangeSet | None:
    """The change set being recorded right now, if any."""
    return _current.get()


@contextmanager
def recording(*, user: Any = None, reason: str = "") -> Iterator[ChangeSet]:
    """Group every history row written inside the block into one new change set."""
    outer = _current.get()
    if outer is not None and not reason:  # nested without a reason of its own: join the outer
        yield outer
        return
    change_set = ChangeSet(
        id=uuid.uuid4().hex,
        user=user if user is not None else (outer.user if outer else None),
        reason=reason,
    )
    token = _current.set(change_set)
    try:
        yield change_set
    finally:
        _current.reset(token)


def _token_principal() -> str:
    """'by <name> (<credential>)' for a request authenticated by a token, not a console login."""
    from simple_history.models import HistoricalRecords

    user = getattr(getattr(HistoricalRecords.context, "request", None), "user", None)
    if user is None or isinstance(user, get_user_model()):
        return ""
    if not getattr(user, "is_authenticated", False):
        return ""
    label = getattr(user, "credential_label", "token")
    return f"by {getattr(user, 'username', '?')} ({label})"


def stamp(history_instance: Any) -> None:
    """Write the current change set's id, author and reason onto a history row being saved."""
    change_set = _current.get()
    if change_set is None:
        history_instance.change_set = uuid.uuid4().hex  # a lone change is its own set
    else:
        history_instance.change_set = change_set.id
        if change_set.reason and not history_instance.history_change_reason:
            history_instance.history_change_reason = change_set.reason
        # Only a User row can be stored; a token principal is named in the reason instead.
        if history_instance.history_user_id is None and isinstance(
            change_set.user, get_user_model()
        ):
            history_instance.history_user = change_set.user
    if not history_instance.history_change_reason:
        history_instance.history_change_reason = _token_principal() or None
