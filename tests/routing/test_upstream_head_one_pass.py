"""The upstream answer head's one-pass check gives the per-line check's verdict on every head.

The plain client checks a head with one regular expression (well_formed_head) and asks the
per-line check (head_error) for the reason only when it fails.
"""

from __future__ import annotations

import random

import pytest

from gateway_project.upstream_head import head_error, head_lines, well_formed_head

STATUS_LINES = [
    b"HTTP/1.1 200 OK\r\n",
    b"HTTP/1.0 404 Not Found\r\n",
    b"HTTP/1.1 200\r\n",
    b"HTTP/1.1 200 OK: with a colon\r\n",
    b"HTTP/1.1 503 \xe9t\xe9\r\n",
    b"HTTP/1.1 100 Continue\r\n",
    b"HTTP/1.1 101 Switching Protocols\r\n",
    b"HTTP/1.1 600 Beyond\r\n",
    b"HTTP/1.2 200 OK\r\n",
    b"HTTP/1.1 200 OK\n",
    b"HTTP/1.1 200 O\rK\r\n",
    b"HTTP/1.1 20 OK\r\n",
    b"http/1.1 200 OK\r\n",
]
NAMES = [b"X-A", b"content-type", b"Set-Cookie", b"a!#$%&'*+-.^_`|~9", b"Via", b"X"]
BAD_NAMES = [b"", b"X A", b"X\x00", b"X(", b" X", b"X\x80"]
VALUES = [
    b"",
    b" plain",
    b"plain",
    b"\t tabbed \t",
    b"  a: b: c  ",
    b" \x80\xff obs-text",
    b" trailing   ",
    b"   ",
    b' "quoted, list", x',
]
BAD_VALUES = [b" a\rb", b" a\x00b", b" a\x7fb", b" a\x01", b" a\nb"]


def _random_head(rng: random.Random) -> bytes:
    parts = [rng.choice(STATUS_LINES)]
    for _ in range(rng.randrange(0, 8)):
        roll = rng.random()
        name = rng.choice(BAD_NAMES) if roll < 0.06 else rng.choice(NAMES)
        value = rng.choice(BAD_VALUES) if 0.06 <= roll < 0.12 else rng.choice(VALUES)
        ending = b"\n" if 0.12 <= roll < 0.15 else b"\r\n"
        if 0.15 <= roll < 0.18:
            parts.append(b" folded continuation\r\n")  # obs-fold
        parts.append(name + b":" + value + ending)
    parts.append(b"\n" if rng.random() < 0.05 else b"\r\n")
    return b"".join(parts)


def test_random_heads_get_the_per_line_checks_verdict():
    rng = random.Random(20261201)
    accepted = 0
    for _ in range(20_000):
        head = _random_head(rng)
        verdict = head_error(head_lines(head)) is None
        assert well_formed_head(head) is verdict, head
        accepted += verdict
    assert 2_000 < accepted < 18_000  # the corpus exercises both verdicts


@pytest.mark.parametrize(
    "head",
    [
        b"HTTP/1.1 200 OK: x\r\n\r\n",
        b"HTTP/1.1 100 Continue\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nA: 1\r\nA: 2\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nX:\t v \t\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nE:\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nV: \xe9\r\n\r\n",
    ],
)
def test_a_well_formed_head(head):
    assert well_formed_head(head)
    assert head_error(head_lines(head)) is None


@pytest.mark.parametrize(
    "head",
    [
        b"HTTP/1.1 200 OK\r\nX: a\rSet-Cookie: b\r\n\r\n",  # bare CR would split a header
        b"HTTP/1.1 200 OK\r\nX: a\x00\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nX : a\r\n\r\n",
        b"HTTP/1.1 200 OK\r\n folded\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nX: a\n\r\n",
        b"HTTP/1.1 200 OK\r\n\n",
        b"HTTP/1.1 200 OK\r\nX: a\r\n\r\nY: smuggled\r\n\r\n",  # two heads are not one head
    ],
)
def test_a_malformed_head_is_not_well_formed(head):
    assert not well_formed_head(head)
    assert head_error(head_lines(head)) is not None


def test_the_largest_head_is_checked_in_one_match_without_failing():
    # 64 Ki tiny lines fill the 256 KiB head bound: the match must neither recurse nor fail.
    head = b"HTTP/1.1 200 OK\r\n" + b"a:\r\n" * (64 * 1024) + b"\r\n"
    assert well_formed_head(head)
    assert not well_formed_head(head[:-2] + b"a\x00:\r\n\r\n")
