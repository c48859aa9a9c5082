"""What audit knows of the apps above it: only what they register here from AppConfig.ready().

Two kinds of registration, both placing a model in a section of CONTRACT section 3's table
("Who may manage the gateway", audit/authority.py decides on sections):
- `tracked`: every change of the model is recorded (history, rollback, undo). Register in
  dependency order (a model after those it points to): a rollback restores in registration
  order and deletes in reverse. Apps' ready() runs in INSTALLED_APPS order, and an app above
  another comes after it there.
- `governed`: the model is managed through the console or API but has no history.

audit names no app: an unregistered model is in the `other` section, which only a superuser
or manage:gateway holder may change.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Model

OTHER_SECTION = "other"


@dataclass(frozen=True)
class Registration:
    """One model's place in audit: its section and whether its changes are recorded."""

    label: str  # app_label.model_name, lower case
    section: str
    history: bool


_registrations: dict[str, Registration] = {}


def _register(model: type[Model], section: str, *, history: bool) -> None:
    if not section or not isinstance(section, str):
        raise ValueError(f"{model.__name__} needs a section name")
    label = model._meta.label_lower
    existing = _registrations.get(label)
    registration = Registration(label, section, history)
    if existing is not None and existing != registration:
        raise ValueError(f"{label} is already registered as {existing}")
    if history and not hasattr(model, "history"):
        raise ValueError(f"{label} has no `history = tracked(...)` field to record changes in")
    _registrations.setdefault(label, registration)


def tracked(model: type[Model], *, section: str) -> None:
    """Record every change of `model` and place it in `section` of the who-may-manage table."""
    _register(model, section, history=True)


def governed(model: type[Model], *, section: str) -> None:
    """Place `model` (no change history) in `section` of the who-may-manage table."""
    _register(model, section, history=False)


def tracked_labels() -> tuple[str, ...]:
    """Labels of the models whose changes are recorded, in registration (dependency) order."""
    return tuple(r.label for r in _registrations.values() if r.history)


def section_of(label: str) -> str:
    """The section a model label was registered in, or `other`."""
    registration = _registrations.get(label)
    return registration.section if registration is not None else OTHER_SECTION


def registrations() -> tuple[Registration, ...]:
    """Every registration, in order."""
    return tuple(_registrations.values())
