"""Route-table properties: no input crashes matching; no normalized path escapes its route."""

from __future__ import annotations

from typing import Any, cast
from urllib.parse import urlsplit

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway_project.errors import MethodNotAllowed, RouteNotFound
from routing.paths import BadPath, compile_pattern, normalize_path
from routing.table import CompiledRoute, CompiledTarget, RouteTable

PATTERNS = ["/api/v1/rd/**", "/api/v1/*/tasks", "/api/v1/pm/**", "/exact", "/files/*/raw/**"]
METHODS = ["GET", "POST", "DELETE", "BREW", ""]


def _route(index: int, pattern: str) -> CompiledRoute:
    return CompiledRoute(
        id=index,
        pattern=compile_pattern(pattern),
        methods=frozenset({"GET", "POST"}) if index % 2 else None,
        service=cast(Any, None),  # matching never looks at the service
        strip_prefix=bool(index % 2),
        timeout_seconds=1.0,
        retries=0,
        authentication="none",
        permissions=frozenset(),
        roles=frozenset(),
        rate_limit=None,
        circuit_breaker=None,
        priority=0,
    )


_compiled = [_route(i, p) for i, p in enumerate(PATTERNS)]
TABLE = RouteTable(routes=tuple(sorted(_compiled, key=lambda r: r.pattern.specificity)), version=1)
TARGET = CompiledTarget.from_url("http://upstream.internal:9001/base", 100)

_TOKENS = [
    "/", "/", "api", "v1", "rd", "pm", "tasks", "exact", "files", "raw", ".", "..", "%2e", "%2E",
    "%2f", "%5c", "%252e", "%00", "\\", "//", "@", "evil.example", ":", "?", "#", "%40", "%3a",
    "http:", "\u00e9", "~", " ", "\t", "%",
]  # fmt: skip
paths = st.one_of(
    st.lists(st.sampled_from(_TOKENS), max_size=14).map("".join),
    st.sampled_from(["/api/v1/rd/", "/files/x/raw/", "/api/v1/pm"]).flatmap(
        lambda prefix: st.lists(st.sampled_from(_TOKENS), max_size=10).map(
            lambda rest: prefix + "".join(rest)
        )
    ),
    st.text(max_size=60),
)


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(METHODS), paths)
def test_no_input_crashes_route_matching(method: str, raw: str) -> None:
    try:
        path = normalize_path(raw)
        TABLE.match(method, path)
    except (BadPath, RouteNotFound, MethodNotAllowed):
        pass


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(METHODS), paths)
def test_a_matched_path_stays_inside_its_route_and_its_upstream(method: str, raw: str) -> None:
    try:
        path = normalize_path(raw)
        route = TABLE.match(method, path)
    except (BadPath, RouteNotFound, MethodNotAllowed):
        return
    assert path.startswith(route.pattern.literal_prefix)
    assert route.pattern.match(path) is not None
    upstream_path = route.pattern.upstream_path(path, strip_prefix=route.strip_prefix)
    assert upstream_path.startswith("/")
    assert not upstream_path.startswith("//")
    assert ".." not in upstream_path.split("/")
    # Whatever the path, the URL sent upstream names the configured host and base path.
    sent = urlsplit(f"{TARGET.scheme}://{TARGET.host_header}{TARGET.base_path}{upstream_path}")
    assert (sent.hostname, sent.port) == (TARGET.host, TARGET.port)
    assert sent.path.startswith(TARGET.base_path + "/")
