"""Tests for request-path normalization and route patterns (routing.paths)."""

from __future__ import annotations

import itertools
import re

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from routing.paths import (
    RESERVED_PREFIXES,
    BadPath,
    CompiledPattern,
    compile_pattern,
    normalize_path,
    pattern_errors,
)

# --- normalize_path: tables ------------------------------------------------------------------

ACCEPTED = [
    ("/", "/"),
    ("/a/b", "/a/b"),
    ("/a/b/", "/a/b/"),
    ("/a/./b", "/a/b"),
    ("/a/b/../c", "/a/c"),
    ("/../a", "/a"),
    ("/a/.", "/a/"),
    ("/a/..", "/"),
    ("/a/b/..", "/a/"),
    ("//x", "/x"),
    ("//a///b", "/a/b"),
    ("/a//../b", "/a/b"),
    ("/api/v1/rd/../../../admin", "/admin"),
    ("/a/%2e%2e/b", "/b"),
    ("/a/%2E%2e/b", "/b"),
    ("/a/%2e/b", "/a/b"),
    ("/a/.%2e/b", "/b"),
    ("/%7E", "/~"),
    ("/%7e", "/~"),
    ("/%41", "/A"),
    ("/%2D%5F%30", "/-_0"),
    ("/%c3%a9", "/%C3%A9"),
    ("/caf\u00e9", "/caf%C3%A9"),
    ("/%20", "/%20"),
    ("/a b", "/a%20b"),
    ("/a[1]", "/a%5B1%5D"),
    ("/%25", "/%25"),
    ("/%25zz", "/%25zz"),
    ("/%25/41", "/%25/41"),
    ("/a/.../b", "/a/.../b"),
    ("/.well-known/x", "/.well-known/x"),
    ("/x,v=1,2:@!$&'()*+=", "/x,v=1,2:@!$&'()*+="),
]

REJECTED = [
    ("", "start with '/'"),
    ("a/b", "start with '/'"),
    ("*", "start with '/'"),
    ("/a%2fb", "encoded slash, backslash or NUL"),
    ("/a%2Fb", "encoded slash, backslash or NUL"),
    ("/a%5cb", "encoded slash, backslash or NUL"),
    ("/a%5Cb", "encoded slash, backslash or NUL"),
    ("/a%00b", "encoded slash, backslash or NUL"),
    ("/a/%252e%252e/b", "double-encoded"),
    ("/a/%252E", "double-encoded"),
    ("/a%252fb", "double-encoded"),
    ("/a%255Cb", "double-encoded"),
    ("/a%2500b", "double-encoded"),
    ("/a/%25%32%65", "double-encoded"),
    ("/%2541", "double-encoded"),
    ("/api/v1/%2573ecret/x", "double-encoded"),
    ("/api/v1/%2573Ecret/x", "double-encoded"),
    ("/a%25%34%31", "double-encoded"),
    ("/a%2525", "double-encoded"),
    ("/a%25C3%25A9", "double-encoded"),
    ("/api/v1/secret;x=1/x", "';'"),
    ("/api/v1/secret;/x", "';'"),
    ("/base/..;/x", "';'"),
    ("/base/.;/x", "';'"),
    ("/x;", "';'"),
    ("/;", "';'"),
    ("/a;b=%2e", "';'"),
    ("/api/v1/secret%3bx=1/x", "encoded ';'"),
    ("/api/v1/secret%3B/x", "encoded ';'"),
    ("/a\\b", "backslash"),
    ("/a#b", "'#'"),
    ("/a\x00b", "control character"),
    ("/a\nb", "control character"),
    ("/a\x7fb", "control character"),
    ("/a%zz", "invalid percent-escape"),
    ("/a%4", "invalid percent-escape"),
    ("/a%", "invalid percent-escape"),
    ("/a%%41", "invalid percent-escape"),
    ("/a\ud800", "not valid Unicode"),
]


@pytest.mark.parametrize(("raw", "expected"), ACCEPTED)
def test_accepted_paths_normalize_to_the_canonical_form(raw: str, expected: str) -> None:
    assert normalize_path(raw) == expected


@pytest.mark.parametrize(("raw", "reason"), REJECTED)
def test_rejected_paths_raise_bad_path_with_a_reason(raw: str, reason: str) -> None:
    with pytest.raises(BadPath) as excinfo:
        normalize_path(raw)
    assert reason in excinfo.value.reason


def test_bad_path_is_a_value_error_carrying_its_reason() -> None:
    with pytest.raises(ValueError, match="encoded slash") as excinfo:
        normalize_path("/a%2Fb")
    assert isinstance(excinfo.value, BadPath)
    assert excinfo.value.reason == str(excinfo.value)


def test_encoded_slash_is_rejected() -> None:
    with pytest.raises(BadPath, match="encoded slash"):
        normalize_path("/files/a%2F..%2F..%2Fetc")


def test_double_encoded_dot_dot_is_rejected() -> None:
    with pytest.raises(BadPath, match="double-encoded"):
        normalize_path("/a/%252e%252e/b")


def test_encoded_dot_dot_is_decoded_and_then_removed() -> None:
    assert normalize_path("/api/v1/rd/%2e%2e/%2e%2e/admin") == "/api/admin"


def test_escapes_of_unreserved_characters_are_decoded() -> None:
    assert normalize_path("/%41%7A%30%2D%2E%5F%7E") == "/Az0-._~"


def test_other_escapes_are_kept_with_upper_case_hex() -> None:
    assert normalize_path("/%c3%a9/%3f/%23") == "/%C3%A9/%3F/%23"


def test_raw_non_ascii_is_percent_encoded_as_utf8() -> None:
    assert normalize_path("/caf\u00e9/\u2603") == "/caf%C3%A9/%E2%98%83"


def test_trailing_slash_is_kept() -> None:
    assert normalize_path("/a/b//") == "/a/b/"


def test_canonical_paths_are_returned_unchanged() -> None:
    path = "/api/v1/rd/tasks/42"
    assert normalize_path(path) is path


# --- normalize_path: properties --------------------------------------------------------------

_PATH_TOKENS = [
    "/", "/", "/", "a", "B", "0", "api", ".", "..", "%", "2", "e", "E", "f", "5", "c", "00",
    "%2e", "%2E", "%2f", "%5c", "%00", "%25", "%252e", "%41", "%7e", "%c3%a9", "%zz", "%4",
    "\u00e9", "\\", "#", "?", " ", "\x00", "\n", "~", "-", "*", ";",
]  # fmt: skip

# Tokens that normalize on their own and in any sequence: escapes here never combine into a
# refused one ("%25" is left out, so no "%25" followed by two hex digits can form).
_VALID_TOKENS = [
    "/", "/", "/", "a", "B", "0", "api", ".", "..", "2", "e", "E", "f", "5", "c", "00",
    "%2e", "%2E", "%41", "%7e", "%c3%a9", "%3f", "\u00e9", "?", " ", "~", "-", "*",
]  # fmt: skip
tricky_paths = st.lists(st.sampled_from(_PATH_TOKENS), max_size=12).map("".join)
valid_paths = st.lists(st.sampled_from(_VALID_TOKENS), max_size=12).map(lambda t: "/" + "".join(t))
any_text = st.one_of(
    st.text(),
    st.text(st.characters(exclude_categories=())).map(lambda s: "/" + s),
    tricky_paths,
    tricky_paths.map(lambda s: "/" + s),
)
# Half of the candidates always normalize, so `assume` never rejects most of a run.
candidate_paths = st.one_of(
    valid_paths,
    tricky_paths.map(lambda s: "/" + s),
    st.text().map(lambda s: "/" + s),
)


def _normalized_or_none(raw: str) -> str | None:
    try:
        return normalize_path(raw)
    except BadPath:
        return None


@settings(max_examples=300, deadline=None)
@given(any_text)
def test_normalize_path_raises_only_bad_path(raw: str) -> None:
    try:
        normalize_path(raw)
    except BadPath as exc:
        assert exc.reason


@settings(max_examples=300, deadline=None)
@given(candidate_paths)
def test_normalize_path_is_idempotent(raw: str) -> None:
    once = _normalized_or_none(raw)
    assume(once is not None)
    assert once is not None
    assert normalize_path(once) == once


@settings(max_examples=300, deadline=None)
@given(candidate_paths)
def test_normalized_paths_are_canonical_ascii(raw: str) -> None:
    out = _normalized_or_none(raw)
    assume(out is not None)
    assert out is not None
    assert out.startswith("/")
    assert out.isascii()
    assert "//" not in out
    assert not any(segment in (".", "..") for segment in out.split("/"))
    assert "\\" not in out
    assert "#" not in out
    assert "?" not in out
    assert ";" not in out
    assert "%3B" not in out.upper()
    assert not re.search(r"%25[0-9A-Fa-f]{2}", out)


@settings(max_examples=300, deadline=None)
@given(valid_paths)
def test_paths_built_from_valid_tokens_always_normalize(raw: str) -> None:
    # Guards the generator the properties rely on: if it stops producing valid paths, say so.
    assert _normalized_or_none(raw) is not None, raw


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.sampled_from(_VALID_TOKENS), max_size=12),
    st.integers(min_value=0, max_value=12),
    st.sampled_from([";", ";x=1", "..;", "%3b", "%3B", "%2573", "%252E", "%25%32%65"]),
)
def test_a_semicolon_or_double_escape_anywhere_is_refused(
    tokens: list[str], at: int, trick: str
) -> None:
    # Inserted between whole tokens, so the refusal can only come from the trick itself.
    tokens.insert(min(at, len(tokens)), trick)
    with pytest.raises(BadPath, match=r"';'|double-encoded"):
        normalize_path("/" + "".join(tokens))


# --- patterns: matching ----------------------------------------------------------------------

MATCHES = [
    ("/api/v1/rd/**", "/api/v1/rd", True),
    ("/api/v1/rd/**", "/api/v1/rd/", True),
    ("/api/v1/rd/**", "/api/v1/rd/x", True),
    ("/api/v1/rd/**", "/api/v1/rd/x/y/", True),
    ("/api/v1/rd/**", "/api/v1/rdx", False),
    ("/api/v1/rd/**", "/api/v1/r", False),
    ("/api/v1/rd/**", "/api/v1", False),
    ("/api/v1/rd/**", "/API/v1/rd", False),
    ("/api/v1/rd/*", "/api/v1/rd/x", True),
    ("/api/v1/rd/*", "/api/v1/rd", False),
    ("/api/v1/rd/*", "/api/v1/rd/", False),
    ("/api/v1/rd/*", "/api/v1/rd/x/y", False),
    ("/api/v1/rd/tasks", "/api/v1/rd/tasks", True),
    ("/api/v1/rd/tasks", "/api/v1/rd/tasks/", False),
    ("/api/v1/rd/tasks", "/api/v1/rd/Tasks", False),
    ("/api/v1/rd/tasks", "/api/v1/rd/tasks/1", False),
    ("/api/*/rd/**", "/api/v2/rd/x", True),
    ("/api/*/rd/**", "/api/v2/rd", True),
    ("/api/*/rd/**", "/api/v2/x/rd", False),
    ("/v1.0/x", "/v1.0/x", True),
    ("/v1.0/x", "/v1a0/x", False),
    ("/x/*/y", "/x/%C3%A9/y", True),
    ("/", "/", True),
    ("/", "/a", False),
]


@pytest.mark.parametrize(("pattern", "path", "expected"), MATCHES)
def test_pattern_matches_normalized_paths(pattern: str, path: str, expected: bool) -> None:
    assert (compile_pattern(pattern).match(path) is not None) is expected


@pytest.mark.parametrize(
    ("pattern", "prefix"),
    [
        ("/api/v1/rd/**", "/api/v1/rd"),
        ("/api/v1/rd/*", "/api/v1/rd"),
        ("/api/*/rd/**", "/api"),
        ("/api/v1/rd/tasks", "/api/v1/rd/tasks"),
        ("/x/*", "/x"),
        ("/", ""),
    ],
)
def test_literal_prefix_is_the_part_before_the_first_wildcard(pattern: str, prefix: str) -> None:
    assert compile_pattern(pattern).literal_prefix == prefix


def test_compiled_pattern_is_frozen() -> None:
    compiled = compile_pattern("/api/v1/**")
    assert isinstance(compiled, CompiledPattern)
    with pytest.raises(AttributeError):
        compiled.pattern = "/x"  # type: ignore[misc]


# --- patterns: specificity -------------------------------------------------------------------

RD_PATTERNS = ["/api/v1/**", "/api/v1/rd/**", "/api/v1/rd/*", "/api/v1/rd/tasks"]


def _first_match(patterns: list[str], path: str) -> str | None:
    compiled = sorted((compile_pattern(p) for p in patterns), key=lambda c: c.specificity)
    return next((c.pattern for c in compiled if c.match(path)), None)


def test_specificity_sorts_exact_then_star_then_double_star_then_shorter_prefix() -> None:
    for order in itertools.permutations(RD_PATTERNS):
        ranked = sorted((compile_pattern(p) for p in order), key=lambda c: c.specificity)
        assert [c.pattern for c in ranked] == [
            "/api/v1/rd/tasks",
            "/api/v1/rd/*",
            "/api/v1/rd/**",
            "/api/v1/**",
        ]


@pytest.mark.parametrize(
    ("path", "winner"),
    [
        ("/api/v1/rd/tasks", "/api/v1/rd/tasks"),
        ("/api/v1/rd/other", "/api/v1/rd/*"),
        ("/api/v1/rd/tasks/1", "/api/v1/rd/**"),
        ("/api/v1/rd", "/api/v1/rd/**"),
        ("/api/v1/rd/", "/api/v1/rd/**"),
        ("/api/v1/other", "/api/v1/**"),
        ("/api/v1", "/api/v1/**"),
        ("/api/v2", None),
    ],
)
def test_most_specific_pattern_matches_first(path: str, winner: str | None) -> None:
    assert _first_match(RD_PATTERNS, path) == winner


@pytest.mark.parametrize(
    ("patterns", "path", "winner"),
    [
        (["/a/*/c", "/a/b/*"], "/a/b/c", "/a/b/*"),
        (["/a/*/c/*", "/a/*/*/d"], "/a/x/c/d", "/a/*/c/*"),
        (["/x/*/**", "/x/y/**"], "/x/y/z", "/x/y/**"),
        (["/x/**", "/x/*/y/**"], "/x/q/y/z", "/x/*/y/**"),
        (["/x/*", "/x/**"], "/x/y", "/x/*"),
        (["/q/*/x", "/q/v1/*"], "/q/v1/x", "/q/v1/*"),
    ],
)
def test_specificity_tie_breaks(patterns: list[str], path: str, winner: str) -> None:
    for order in itertools.permutations(patterns):
        assert _first_match(list(order), path) == winner


def test_exact_patterns_sort_before_all_wildcard_patterns() -> None:
    exact = compile_pattern("/a")
    for other in ["/a/b/*", "/a/b/c/**", "/x/*", "/q/**"]:
        assert exact.specificity < compile_pattern(other).specificity


# --- patterns: upstream path -----------------------------------------------------------------

STRIP = [
    ("/api/v1/rd/**", "/api/v1/rd/tasks/1", "/tasks/1"),
    ("/api/v1/rd/**", "/api/v1/rd/tasks/", "/tasks/"),
    ("/api/v1/rd/**", "/api/v1/rd", "/"),
    ("/api/v1/rd/**", "/api/v1/rd/", "/"),
    ("/api/*/rd/**", "/api/v9/rd/x", "/x"),
    ("/api/v1/rd/*", "/api/v1/rd/x", "/"),
    ("/api/v1/rd/tasks", "/api/v1/rd/tasks", "/"),
]


@pytest.mark.parametrize(("pattern", "path", "expected"), STRIP)
def test_strip_prefix_drops_what_the_pattern_matched_before_double_star(
    pattern: str, path: str, expected: str
) -> None:
    assert compile_pattern(pattern).upstream_path(path, strip_prefix=True) == expected


@pytest.mark.parametrize(("pattern", "path", "_expected"), STRIP)
def test_without_strip_prefix_the_path_is_forwarded_unchanged(
    pattern: str, path: str, _expected: str
) -> None:
    assert compile_pattern(pattern).upstream_path(path, strip_prefix=False) == path


def test_strip_prefix_on_a_non_matching_path_is_an_error() -> None:
    with pytest.raises(ValueError, match="does not match"):
        compile_pattern("/api/v1/rd/**").upstream_path("/api/v2/x", strip_prefix=True)


# --- patterns: validation --------------------------------------------------------------------

INVALID = [
    ("", "is empty"),
    ("api/v1/**", "must start with '/'"),
    ("/a/**/b", "'**' may only be the last segment"),
    ("/a*", "mixes '*'"),
    ("/a/**x", "mixes '*'"),
    ("/a/b*c/d", "mixes '*'"),
    ("/a//b", "empty segment"),
    ("/a/", "trailing slash"),
    ("/a/./b", "dot segment"),
    ("/a/../b", "dot segment"),
    ("/a/..", "dot segment"),
    ("/a?b=1", "query"),
    ("/a#top", "fragment"),
    ("/a b", "whitespace"),
    ("/a\u00a0b", "whitespace"),
    ("/a\tb", "control characters"),
    ("/a\x00b", "control characters"),
    ("/a\x7fb", "control characters"),
    ("/a\\b", "backslash"),
    ("/a%20b", "'%'"),
    ("/caf%C3%A9", "'%'"),
    ("/caf\u00e9", "percent-encoded"),
    ("/a[1]", "percent-encoded"),
    ('/a"b', "percent-encoded"),
    ("/x;y=1", "contains ';'"),
    ("/base/..;/x", "contains ';'"),
]


@pytest.mark.parametrize(("pattern", "fragment"), INVALID)
def test_invalid_patterns_are_reported_with_a_message(pattern: str, fragment: str) -> None:
    errors = pattern_errors(pattern)
    assert any(fragment in error for error in errors), errors
    with pytest.raises(ValueError, match="invalid route pattern") as excinfo:
        compile_pattern(pattern)
    assert fragment in str(excinfo.value)


def test_every_problem_is_listed() -> None:
    errors = pattern_errors("a*/**/b c?")
    assert len(errors) == 5
    joined = " ".join(errors)
    for fragment in ["must start with '/'", "whitespace", "query", "last segment", "mixes"]:
        assert fragment in joined


VALID = [
    "/api/v1/**",
    "/api/v1/rd/*",
    "/api/v1/rd/tasks",
    "/apix/**",
    "/oauth/**",
    "/healthz",
    "/metrics-v2/*",
    "/staticfiles/**",
    "/users/you/**",
    "/api",
    "/x/*/y/**",
    "/",
    "/v1.0/a-b_c~d/x,y=1/@me",
    # Leading wildcards are fine as long as they cannot take over P or P/x themselves.
    "/api/*/rd/**",
    "/*/v1/**",
]


@pytest.mark.parametrize("pattern", VALID)
def test_valid_patterns_have_no_errors_and_compile(pattern: str) -> None:
    assert pattern_errors(pattern) == []
    assert compile_pattern(pattern).pattern == pattern


SHADOWING = [
    ("/**", "/admin"),
    ("/*", "/admin"),
    ("/api/**", "/api/gateway"),
    ("/api/*", "/api/gateway"),
    ("/api/*/x", "/api/gateway"),
    ("/health", "/health"),
    ("/health/**", "/health"),
    ("/admin/foo/**", "/admin"),
    ("/o/x", "/o"),
    ("/o/*", "/o"),
    ("/users/me/**", "/users/me"),
    ("/users/*", "/users/me"),
    ("/api/openapi.json", "/api/openapi.json"),
    ("/static/css/*", "/static"),
    ("/*/x", "/admin"),
]


@pytest.mark.parametrize(("pattern", "reserved"), SHADOWING)
def test_patterns_shadowing_gateway_paths_are_rejected(pattern: str, reserved: str) -> None:
    errors = pattern_errors(pattern)
    assert errors == [
        f"shadows the gateway's own path {reserved}; choose a path outside "
        + ", ".join(RESERVED_PREFIXES)
    ]


def test_shadowing_message_names_the_reserved_path_and_the_fix() -> None:
    (message,) = pattern_errors("/health")
    assert message.startswith("shadows the gateway's own path /health; choose a path outside ")
    assert "/admin, /api/gateway" in message


def test_reserved_prefixes_are_themselves_invalid_patterns() -> None:
    for prefix in RESERVED_PREFIXES:
        assert any("shadows" in error for error in pattern_errors(prefix))
        assert any("shadows" in error for error in pattern_errors(prefix + "/**"))


# --- patterns: properties --------------------------------------------------------------------

_PATTERN_SEGMENTS = ["api", "v1", "rd", "admin", "o", "x", "*"]
# Valid patterns by construction (generating and filtering made Hypothesis give up on some
# seeds): a first segment that names no reserved path, after which nothing can shadow one, or
# a leading `*` followed by a literal that no reserved path has.
_SAFE_FIRST = ["x", "rd", "v1", "svc"]
_SAFE_AFTER_STAR = [["*", "v1"], ["*", "rd", "*"]]
_safe_heads = st.one_of(
    st.sampled_from(_SAFE_FIRST).map(lambda s: [s]), st.sampled_from(_SAFE_AFTER_STAR)
)
pattern_strategy = st.one_of(
    st.just("/"),
    st.builds(
        lambda head, rest, tail: "/" + "/".join([*head, *rest, *(["**"] if tail else [])]),
        _safe_heads,
        st.lists(st.sampled_from(_PATTERN_SEGMENTS), max_size=3),
        st.booleans(),
    ),
)
# Segments that always normalize, including ones that try to climb out of a prefix.
_RAW_SEGMENTS = ["api", "v1", "rd", "x", "q", "..", ".", "", "%2e%2e", "%2E", ".%2e", "%41", "%7e"]
route_paths = st.lists(st.sampled_from(_RAW_SEGMENTS), max_size=6).map(
    lambda segs: "/" + "/".join(segs)
)


double_star_patterns = st.builds(
    lambda head, rest: "/" + "/".join([*head, *rest, "**"]),
    _safe_heads,
    st.lists(st.sampled_from(_PATTERN_SEGMENTS), max_size=3),
)


@st.composite
def pattern_and_raw_path(draw: st.DrawFn) -> tuple[str, str]:
    """A valid `**` pattern and a raw path that often starts like it, then climbs or wanders."""
    pattern = draw(double_star_patterns)
    head: list[str] = []
    if draw(st.booleans()):
        segments = pattern.removeprefix("/").split("/")[:-1]
        head = [draw(st.sampled_from(["q", "v1"])) if seg == "*" else seg for seg in segments]
    tail = draw(st.lists(st.sampled_from(_RAW_SEGMENTS), max_size=5))
    return pattern, "/" + "/".join([*head, *tail])


def test_generated_patterns_are_valid() -> None:
    # Guards the generators: every pattern they can make is valid, so no test filters them.
    assert pattern_errors("/") == []
    for head in [[s] for s in _SAFE_FIRST] + _SAFE_AFTER_STAR:
        for rest in itertools.product([*_PATTERN_SEGMENTS, None], repeat=3):
            for tail in ([], ["**"]):
                pattern = "/" + "/".join([*head, *(r for r in rest if r), *tail])
                assert pattern_errors(pattern) == [], pattern


@settings(max_examples=300, deadline=None)
@given(pattern_and_raw_path())
def test_a_matched_path_never_escapes_the_literal_prefix(case: tuple[str, str]) -> None:
    pattern, raw = case
    compiled = compile_pattern(pattern)
    path = normalize_path(raw)  # the generator only makes paths that normalize
    if compiled.match(path):
        prefix = compiled.literal_prefix
        assert path.startswith(prefix)
        assert path[len(prefix) :] == "" or path[len(prefix)] == "/"
        stripped = compiled.upstream_path(path, strip_prefix=True)
        assert normalize_path(stripped) == stripped


@settings(max_examples=300, deadline=None)
@given(pattern_strategy)
def test_valid_patterns_are_their_own_normalization(pattern: str) -> None:
    assert normalize_path(pattern) == pattern
    assert compile_pattern(pattern).match(pattern.replace("/**", "").replace("*", "q") or "/")


@settings(max_examples=300, deadline=None)
@given(pattern_strategy, pattern_strategy, route_paths)
def test_distinct_overlapping_patterns_never_tie(first: str, second: str, raw: str) -> None:
    assume(first != second)
    path = normalize_path(raw)  # route_paths only makes paths that normalize
    a, b = compile_pattern(first), compile_pattern(second)
    if a.match(path) and b.match(path):
        assert a.specificity != b.specificity
