"""What the apps above plug into the ground: each registers here from its AppConfig.ready().

gateway_project imports none of the apps (the layer test enforces it); where the ground needs
an answer only an app has (which answers were relayed from an upstream, which config version
this worker serves, what a serving process starts), the app hands it in. Until one does, the
ground answers as if no app had anything to say.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

_relayed_response_types: list[type] = []
_config_version: list[Callable[[], int]] = []
_serving_starters: list[Callable[[], object]] = []
_request_context: list[Callable[[Any], Any]] = []


def register_relayed_response(*types: type) -> None:
    """Answers of these types were relayed from an upstream, not written by the gateway."""
    for kind in types:
        if kind not in _relayed_response_types:
            _relayed_response_types.append(kind)


def is_relayed_response(response: object) -> bool:
    """Whether `response` is an upstream's answer the gateway relayed."""
    return isinstance(response, tuple(_relayed_response_types))


def register_config_version(current: Callable[[], int]) -> None:
    """The function telling which config version this worker serves (the last one wins)."""
    _config_version[:] = [current]


def config_version() -> int | None:
    """The config version this worker serves, or None when nothing registered one."""
    return _config_version[0]() if _config_version else None


def register_serving_starter(start: Callable[[], object]) -> None:
    """A function every serving process (the WSGI application) calls once when it loads."""
    if start not in _serving_starters:
        _serving_starters.append(start)


def start_serving() -> None:
    """Run every registered serving-process starter (background threads and the like)."""
    for start in _serving_starters:
        start()


def register_request_context(reader: Callable[[Any], Any]) -> None:
    """The function giving a proxied request's pipeline context (the last one wins)."""
    _request_context[:] = [reader]


def request_context(request: Any) -> Any:
    """The pipeline context of a proxied request (route, path, principal, upstream timing), or
    None for the gateway's own pages and when no app registered a reader."""
    return _request_context[0](request) if _request_context else None
