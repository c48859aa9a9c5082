"""A real HTTP client for the console (Django admin): log in, fill in and submit add forms."""

from __future__ import annotations

from html.parser import HTMLParser
from typing import Any

import requests

TIMEOUT = 10.0


class _FormFields(HTMLParser):
    """The values a browser would submit for the page's first POST form, unchanged."""

    def __init__(self) -> None:
        super().__init__()
        self.fields: list[tuple[str, str]] = []
        self._in_form = False
        self._select: tuple[str, bool] | None = None
        self._select_values: list[str] = []
        self._select_first: str | None = None
        self._textarea: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        """Collect inputs, selects and textareas of the form."""
        a = {k: v or "" for k, v in attrs}
        if tag == "form" and a.get("method", "").lower() == "post":
            self._in_form = True
        if not self._in_form:
            return
        name = a.get("name")
        if tag == "input" and name:
            kind = a.get("type", "text").lower()
            if kind in ("submit", "button", "image", "reset", "file"):
                return
            if kind in ("checkbox", "radio") and "checked" not in a:
                return
            self.fields.append((name, a.get("value", "on" if kind == "checkbox" else "")))
        elif tag == "select" and name:
            self._select = (name, "multiple" in a)
            self._select_values, self._select_first = [], None
        elif tag == "option" and self._select is not None:
            value = a.get("value", "")
            if self._select_first is None:
                self._select_first = value
            if "selected" in a:
                self._select_values.append(value)
        elif tag == "textarea" and name:
            self._textarea = name
            self.fields.append((name, ""))

    def handle_endtag(self, tag: str) -> None:
        """Close selects (a single select submits its first option when none is chosen)."""
        if tag == "form":
            self._in_form = False
        elif tag == "select" and self._select is not None:
            name, multiple = self._select
            values = self._select_values
            if not values and not multiple and self._select_first is not None:
                values = [self._select_first]
            self.fields.extend((name, value) for value in values)
            self._select = None
        elif tag == "textarea":
            self._textarea = None

    def handle_data(self, data: str) -> None:
        """Textarea contents."""
        if self._textarea is not None:
            name, value = self.fields[-1]
            self.fields[-1] = (name, value + data)


def form_fields(html: str) -> list[tuple[str, str]]:
    """The (name, value) pairs the first POST form of `html` submits as it is."""
    parser = _FormFields()
    parser.feed(html)
    return parser.fields


class ConsoleSession:
    """A logged-in console user on one gateway node, driving it over real HTTP."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.http = requests.Session()

    def submit(self, path: str, values: dict[str, Any]) -> requests.Response:
        """GET the form at `path`, change `values` (lists for multi-selects), POST it back."""
        page = self.http.get(self.base_url + path, timeout=TIMEOUT)
        page.raise_for_status()
        fields = [(n, v) for n, v in form_fields(page.text) if n not in values]
        for name, value in values.items():
            for item in value if isinstance(value, list) else [value]:
                fields.append((name, str(item)))
        return self.http.post(
            self.base_url + path,
            data=fields,
            headers={"Referer": self.base_url + path},
            allow_redirects=False,
            timeout=TIMEOUT,
        )

    def login(self, username: str, password: str) -> None:
        """Log in through the login form (CSRF token and cookie included)."""
        response = self.submit(
            "/admin/login/?next=/admin/",
            {"username": username, "password": password, "next": "/admin/"},
        )
        if response.status_code != 302:
            raise AssertionError(f"console login failed: {response.status_code}")

    def add(self, model: str, values: dict[str, Any]) -> requests.Response:
        """Submit the console's add form of `model` (e.g. `routing/service`); 302 on success."""
        return self.submit(f"/admin/{model}/add/", {**values, "_save": "Save"})
