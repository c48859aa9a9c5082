"""The route form's CORS fields, their config-file shape, and the preflight they would answer.

One definition serves the console's route form (routing/admin.py) and its live preview
(management/console_cors.py): the fields become the config file's `cors` entry, are checked by
the config file's own check_cors, compiled by compile_cors and answered by
routing.policies.cors, exactly as the proxy does for the saved route.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from django import forms

from routing.compiled_policies import compile_cors
from routing.configfile.policies import check_cors
from routing.configfile.spec import CorsSpec
from routing.configfile.validate import Checker
from routing.models import HTTP_METHODS
from routing.policies import cors

# The form field holding each key of the `cors` entry (errors are shown beside it).
CORS_FORM_FIELDS = {
    "origins": "cors_origins",
    "methods": "cors_methods",
    "headers": "cors_headers",
    "expose_headers": "cors_expose_headers",
    "credentials": "cors_credentials",
    "max_age": "cors_max_age",
}
_SPLIT = re.compile(r"[\s,]+")


def _names(text: str | None) -> list[str]:
    """Header names or origins typed one per line or separated by commas."""
    return [part for part in _SPLIT.split(text or "") if part]


def _help(key: str) -> str:
    return CorsSpec.key(key).help


class CorsFields(forms.Form):
    """The `cors` key as separate form fields, each with the config file's help."""

    cors_origins = forms.CharField(
        label="Allowed origins",
        required=False,
        max_length=32_000,  # 100 origins (the most a list may hold) of up to 300 characters
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text=f"{_help('origins')} One per line, e.g. https://app.example.com. "
        "Empty: no CORS (browsers on other origins cannot call the route).",
    )
    cors_methods = forms.MultipleChoiceField(
        label="Allowed methods",
        choices=[(m, m) for m in HTTP_METHODS],
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text=f"{_help('methods')} None ticked: the route's methods.",
    )
    cors_headers = forms.CharField(
        label="Allowed request headers",
        required=False,
        max_length=4000,
        help_text=f"{_help('headers')} Comma-separated. Empty: the headers the browser asks for.",
    )
    cors_expose_headers = forms.CharField(
        label="Exposed response headers",
        required=False,
        max_length=4000,
        help_text=f"{_help('expose_headers')} Comma-separated.",
    )
    cors_credentials = forms.BooleanField(
        label="Allow credentials", required=False, help_text=_help("credentials")
    )
    cors_max_age = forms.CharField(
        label="Preflight max age",
        required=False,
        max_length=20,
        help_text=_help("max_age"),
    )

    @staticmethod
    def initial_from(entry: dict[str, Any] | None) -> dict[str, Any]:
        """The fields' initial values from a config-file `cors` entry (None: all empty)."""
        entry = entry or {}
        return {
            "cors_origins": "\n".join(entry.get("origins", [])),
            "cors_methods": list(entry.get("methods", [])),
            "cors_headers": ", ".join(entry.get("headers", [])),
            "cors_expose_headers": ", ".join(entry.get("expose_headers", [])),
            "cors_credentials": bool(entry.get("credentials", False)),
            "cors_max_age": entry.get("max_age", ""),
        }


def cors_entry(cleaned: dict[str, Any]) -> dict[str, Any] | None:
    """The config-file `cors` entry the cleaned fields describe; None when they are all empty."""
    entry: dict[str, Any] = {}
    origins = _names(cleaned.get("cors_origins"))
    if origins:
        entry["origins"] = origins
    for key in ("methods", "headers", "expose_headers"):
        raw = cleaned.get(CORS_FORM_FIELDS[key])
        values = list(raw) if isinstance(raw, list | tuple) else _names(raw)
        if values:
            entry[key] = values
    if cleaned.get("cors_credentials"):
        entry["credentials"] = True
    max_age = (cleaned.get("cors_max_age") or "").strip()
    if max_age:
        entry["max_age"] = max_age
    return entry or None


def cors_error_field(location: str) -> str:
    """The form field an error of `cors...` belongs beside (`cors.origins[2]` -> cors_origins)."""
    key = location.removeprefix("cors").lstrip(".").split("[", 1)[0].split(".", 1)[0]
    return CORS_FORM_FIELDS.get(key, "cors_origins")


def check_cors_fields(cleaned: dict[str, Any], checker: Checker) -> CorsSpec | None:
    """The fields checked as the config file's `cors` key (errors land in `checker`)."""
    entry = cors_entry(cleaned)
    return None if entry is None else check_cors(checker, entry, "cors")


@dataclass(frozen=True)
class CorsPreview:
    """What the gateway would answer a browser for a CORS config, computed by the proxy's code."""

    errors: list[dict[str, str]] = field(default_factory=list)  # {field, message}: bad config
    configured: bool = False  # False: no cors at all (preflights are not answered by CORS)
    status: int | None = None  # the preflight's status
    preflight_headers: dict[str, str] = field(default_factory=dict)  # {} : no CORS headers
    response_headers: dict[str, str] = field(default_factory=dict)  # on the actual answer
    browser_notes: list[str] = field(default_factory=list)  # why a browser would still block

    def as_json(self) -> dict[str, Any]:
        """The preview as the console's JSON answer."""
        return {
            "ok": not self.errors,
            "errors": self.errors,
            "configured": self.configured,
            "status": self.status,
            "preflight_headers": self.preflight_headers,
            "response_headers": self.response_headers,
            "browser_notes": self.browser_notes,
        }


def _browser_notes(
    headers: dict[str, str], method: str, requested_headers: str | None
) -> list[str]:
    """What a browser checks in an allowed preflight answer beyond the origin (Fetch standard)."""
    notes = []
    allowed_methods = {
        m.strip() for m in headers.get("Access-Control-Allow-Methods", "").split(",")
    }
    if method not in allowed_methods:
        notes.append(f"{method} is not in Access-Control-Allow-Methods: the browser blocks it.")
    allowed = {
        h.strip().lower() for h in headers.get("Access-Control-Allow-Headers", "").split(",")
    }
    missing = [h for h in _names(requested_headers) if h.lower() not in allowed]
    if missing:
        notes.append(
            "Not in Access-Control-Allow-Headers, so the browser blocks the request: "
            + ", ".join(missing)
            + "."
        )
    return notes


def preview(
    cleaned: dict[str, Any],
    *,
    route_methods: tuple[str, ...],
    origin: str,
    method: str,
    requested_headers: str | None,
) -> CorsPreview:
    """The preflight (and actual answer's CORS headers) for these fields, as the proxy answers."""
    checker = Checker({})
    spec = check_cors_fields(cleaned, checker)
    if checker.errors:
        return CorsPreview(
            errors=[
                {"field": cors_error_field(e.location), "message": f"{e.location}: {e.message}"}
                for e in checker.errors
            ]
        )
    policy = compile_cors(spec, route_methods)
    if policy is None:
        return CorsPreview()
    answer = cors.preflight_headers(policy, origin, requested_headers or None)
    return CorsPreview(
        configured=True,
        status=cors.PREFLIGHT_STATUS,
        preflight_headers=answer,
        response_headers=cors.response_headers(policy, origin),
        browser_notes=_browser_notes(answer, method, requested_headers) if answer else [],
    )


def route_methods_of(choices: list[str] | None) -> tuple[str, ...]:
    """The ticked methods as the route table compiles them (the stored, sorted method list)."""
    return tuple(sorted(set(choices or [])))
