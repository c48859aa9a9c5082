"""Request-path normalization and route-pattern compilation for the proxy.

Pure Python (no Django): it runs on every proxied request and also validates route
configuration. The path we match routes against is exactly the path we forward upstream,
so an upstream can never see a path that resolves differently from what we routed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from gateway_project.net import RESERVED_PREFIXES


class BadPath(ValueError):
    """A request path the gateway refuses to route; `reason` says why in one sentence."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# --- normalization -----------------------------------------------------------------------------

_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
# RFC 3986 pchar without pct-encoded, plus "/": the characters a normalized path keeps raw.
_PATH_CHARS = _UNRESERVED | frozenset("!$&'()*+,;=:@/")
# No ";" here: a path holding one is refused (below), so it never takes the fast path.
_SAFE_PATH = re.compile(r"[A-Za-z0-9\-._~!$&'()*+,=:@/]*")
_FORBIDDEN_RAW = re.compile(r"[\x00-\x1f\x7f\\#]")
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
_TO_REWRITE = re.compile(r"%[0-9A-Fa-f]{2}|[^A-Za-z0-9\-._~!$&'()*+,;=:@/%]")
_FORBIDDEN_ESCAPES = frozenset({0x00, 0x2F, 0x5C})
_SEMICOLON = 0x3B
_DOUBLE_ESCAPE = re.compile(r"%25[0-9A-Fa-f]{2}")
_SLASH_RUN = re.compile(r"/{2,}")


def _rewrite(match: re.Match[str]) -> str:
    token = match.group()
    if token[0] != "%":
        # Anything outside pchar is sent percent-encoded so the output is a valid ASCII path.
        return "".join(f"%{byte:02X}" for byte in token.encode("utf-8"))
    value = int(token[1:], 16)
    if value in _FORBIDDEN_ESCAPES:
        # Upstreams disagree on whether %2F splits segments; refusing is the only safe answer.
        raise BadPath("path contains an encoded slash, backslash or NUL")
    if value == _SEMICOLON:
        # Servers that decode before they strip path parameters read "%3B" as ";".
        raise BadPath("path contains an encoded ';' (matrix parameters are not accepted)")
    char = chr(value)
    if char in _UNRESERVED:
        return char
    return token.upper()


def _remove_dot_segments(path: str) -> str:
    segments = path.split("/")
    out: list[str] = []
    for segment in segments[1:]:
        if segment == "..":
            if out:
                out.pop()
        elif segment != ".":
            out.append(segment)
    result = "/" + "/".join(out)
    # RFC 3986 5.2.4: a final "." or ".." leaves the path ending in "/".
    if out and segments[-1] in (".", ".."):
        result += "/"
    return result


def normalize_path(raw: str) -> str:
    """Return the canonical form of a raw request path, or raise BadPath."""
    if not raw.startswith("/"):
        raise BadPath("path must start with '/'")
    # Most real paths are already canonical; skip the rewriting passes for them.
    if _SAFE_PATH.fullmatch(raw) and "//" not in raw and "/." not in raw:
        return raw
    forbidden = _FORBIDDEN_RAW.search(raw)
    if forbidden:
        char = forbidden.group()
        if char == "\\":
            raise BadPath("path contains a backslash")
        if char == "#":
            raise BadPath("path contains '#'")
        raise BadPath("path contains a control character")
    if _BAD_ESCAPE.search(raw):
        raise BadPath("path contains an invalid percent-escape")
    if ";" in raw:
        # Tomcat-style upstreams drop "x=1" from "/secret;x=1/x" (and read "..;" as ".."), so
        # they would serve a path the gateway never routed on.
        raise BadPath("path contains ';' (matrix parameters are not accepted)")
    try:
        path = _TO_REWRITE.sub(_rewrite, raw)
    except UnicodeEncodeError:
        raise BadPath("path is not valid Unicode text") from None
    # "%2573" is "%73" after one decoding and "s" after two: an upstream that decodes once
    # more would see a path the gateway never routed on. Checked after the rewrite so that
    # "%25%32%65" (whose "%32%65" becomes "2e") is caught too.
    if "%25" in path and _DOUBLE_ESCAPE.search(path):
        raise BadPath("path contains a double-encoded character ('%25' and two hex digits)")
    if "/." in path:
        path = _remove_dot_segments(path)
    if "//" in path:
        path = _SLASH_RUN.sub("/", path)
    return path


# --- route patterns ----------------------------------------------------------------------------

_RESERVED_SEGMENTS: tuple[tuple[str, tuple[str, ...]], ...] = tuple(
    (prefix, tuple(prefix[1:].split("/"))) for prefix in RESERVED_PREFIXES
)
_LITERAL_CHARS_HINT = "-._~!$&'()+,=:@"


@dataclass(frozen=True, slots=True)
class CompiledPattern:
    """A validated route pattern with its matcher and precedence key.

    `specificity` sorts ascending, most specific first. It is
    `(is_wildcard, has_double_star, -literal_segments, single_stars, -len(literal_prefix),
    *segment_kinds)`: exact patterns first; then patterns without a final `**`; then more
    literal segments; then fewer `*`; then a longer literal prefix; finally, segment by
    segment, a literal (0) before `*` (1) before `**` (2). The last part makes the key differ
    for any two distinct patterns that can match the same path, so the order is never a tie.
    """

    pattern: str
    regex: re.Pattern[str]
    literal_prefix: str
    specificity: tuple[int, ...]

    def match(self, path: str) -> re.Match[str] | None:
        """Match a normalized path against the whole pattern."""
        # A string prefix test is far cheaper than the regex and rejects most routes.
        if not path.startswith(self.literal_prefix):
            return None
        return self.regex.fullmatch(path)

    def upstream_path(self, path: str, *, strip_prefix: bool) -> str:
        """The path to send upstream for a matching normalized path."""
        if not strip_prefix:
            return path
        found = self.match(path)
        if found is None:
            raise ValueError(f"path {path!r} does not match route pattern {self.pattern!r}")
        if not self.pattern.endswith("**"):
            return "/"
        rest = found["rest"] or ""
        return "/" + rest.lstrip("/")


def _split(pattern: str) -> list[str]:
    if pattern == "/":
        return []
    return pattern.removeprefix("/").split("/")


def _character_errors(pattern: str) -> list[str]:
    control = whitespace = query = backslash = percent = semicolon = False
    others: list[str] = []
    for char in pattern:
        code = ord(char)
        if code < 0x20 or code == 0x7F:
            control = True
        elif char.isspace():
            whitespace = True
        elif char in "?#":
            query = True
        elif char == "\\":
            backslash = True
        elif char == "%":
            percent = True
        elif char == ";":
            semicolon = True
        elif char not in _PATH_CHARS and char not in others:
            others.append(char)
    errors: list[str] = []
    if control:
        errors.append("contains control characters; remove them")
    if whitespace:
        errors.append("contains whitespace; remove it or use '-' or '_' instead")
    if query:
        errors.append(
            "contains '?' or '#'; routes match the path only, so remove the query or fragment"
        )
    if backslash:
        errors.append("contains a backslash; use '/' to separate segments")
    if percent:
        errors.append(
            "contains '%'; routes match decoded paths, so write the characters themselves "
            "(or use '*' for a segment that needs percent-encoding)"
        )
    if semicolon:
        errors.append(
            "contains ';'; a request path with ';' (matrix parameters) is refused with 400, "
            "so no request could match: remove it"
        )
    if others:
        listed = ", ".join(repr(char) for char in others)
        errors.append(
            f"contains characters that must be percent-encoded in a URL path ({listed}); "
            f"use only ASCII letters, digits and {_LITERAL_CHARS_HINT}"
        )
    return errors


def _segment_errors(segments: list[str]) -> list[str]:
    errors: list[str] = []
    if "" in segments[:-1]:
        errors.append("contains an empty segment ('//'); use a single '/' between segments")
    if len(segments) > 1 and segments[-1] == "":
        errors.append(
            "ends with '/'; remove the trailing slash (use '/path/**' to match everything below)"
        )
    if "." in segments or ".." in segments:
        errors.append("contains a '.' or '..' segment; write the path without dot segments")
    if "**" in segments[:-1]:
        errors.append("has '**' before the end; '**' may only be the last segment (use '*' here)")
    for segment in dict.fromkeys(segments):
        if "*" in segment and segment not in ("*", "**"):
            errors.append(
                f"segment {segment!r} mixes '*' with other characters; a wildcard must be a "
                "whole segment ('*' or '**')"
            )
    return errors


def _build(segments: list[str]) -> tuple[re.Pattern[str], list[str]]:
    """The matcher for well-formed wildcard segments, and the literal segments before any."""
    double_star = bool(segments) and segments[-1] == "**"
    parts: list[str] = []
    prefix: list[str] = []
    for segment in segments[:-1] if double_star else segments:
        if segment == "*":
            parts.append("/[^/]+")
        else:
            parts.append("/" + re.escape(segment))
            if len(prefix) == len(parts) - 1:
                prefix.append(segment)
    source = "".join(parts)
    if double_star:
        source += "(?:/(?P<rest>.*))?"
    elif not source:
        source = "/"
    return re.compile(source, re.DOTALL), prefix


def _shadowed(segments: list[str]) -> str | None:
    """The first reserved path the pattern would take over, if any."""
    regex, prefix = _build(segments)
    for reserved, reserved_segments in _RESERVED_SEGMENTS:
        if regex.fullmatch(reserved) or regex.fullmatch(reserved + "/x"):
            return reserved
        # Compared segment-wise so /o does not claim /oauth.
        if tuple(prefix[: len(reserved_segments)]) == reserved_segments:
            return reserved
    return None


def pattern_errors(pattern: str) -> list[str]:
    """Every problem with a route pattern, each naming the fix; [] when the pattern is valid."""
    errors: list[str] = []
    if pattern == "":
        errors.append("is empty; write a path such as '/api/v1/orders/**'")
    elif not pattern.startswith("/"):
        errors.append(f"must start with '/'; write '/{pattern}'")
    errors.extend(_character_errors(pattern))
    segments = _split(pattern)
    errors.extend(_segment_errors(segments))
    if not errors:
        # The checks above cover every way a pattern can differ from its normalization;
        # this keeps the contract true even if normalize_path grows a new rule.
        try:
            normalized = normalize_path(pattern)
        except BadPath as exc:
            errors.append(f"is not a valid path ({exc.reason}); fix the path")
        else:
            if normalized != pattern:
                errors.append(f"is not in normalized form; write it as {normalized!r}")
    wildcards_ok = "**" not in segments[:-1] and all(s in ("*", "**") for s in segments if "*" in s)
    if pattern.startswith("/") and wildcards_ok:
        reserved = _shadowed(segments)
        if reserved is not None:
            errors.append(
                f"shadows the gateway's own path {reserved}; choose a path outside "
                + ", ".join(RESERVED_PREFIXES)
            )
    return errors


def compile_pattern(pattern: str) -> CompiledPattern:
    """Validate and compile a route pattern; ValueError lists every problem."""
    errors = pattern_errors(pattern)
    if errors:
        raise ValueError(f"invalid route pattern {pattern!r}: " + " | ".join(errors))
    segments = _split(pattern)
    regex, prefix_segments = _build(segments)
    literal_prefix = "".join("/" + segment for segment in prefix_segments)
    kinds = tuple(2 if s == "**" else 1 if s == "*" else 0 for s in segments)
    single_stars = kinds.count(1)
    double_star = 2 in kinds
    specificity = (
        int(single_stars > 0 or double_star),
        int(double_star),
        -kinds.count(0),
        single_stars,
        -len(literal_prefix),
        *kinds,
    )
    return CompiledPattern(
        pattern=pattern,
        regex=regex,
        literal_prefix=literal_prefix,
        specificity=specificity,
    )
