"""bench/calls.py's counter: calls charged to the component of the code that makes them."""

from __future__ import annotations

import sys

from bench.calls import CallCounter
from bench.profile import OTHER
from routing.paths import normalize_path

ROUTING = "routing (match, pipeline, view)"


def test_python_calls_count_for_their_own_code_and_calls_into_c_for_the_caller():
    counter = CallCounter()
    sys.setprofile(counter)
    try:
        normalize_path("/a/./b/../c")
        len("counted for this file")
    finally:
        sys.setprofile(None)
    assert counter.python[ROUTING] >= 1  # normalize_path and what it calls in routing/
    assert counter.c[ROUTING] >= 1  # its str methods
    assert counter.c[OTHER] >= 1  # len() from this test
