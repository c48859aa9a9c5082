"""bench/calls.py's counter: calls charged to the component of the code that makes them."""

from __future__ import annotations

import sys
from pathlib import Path

from bench.calls import ROOT, CallCounter, inside_project
from bench.profile import OTHER, component_of
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


def test_a_files_component_does_not_depend_on_where_the_checkout_is():
    gunicorn = "gunicorn worker (accept, parse, write)"
    for root in (ROOT, Path("/work/wt-gunicorn"), Path("/home/django")):
        assert component_of(inside_project(f"{root}/routing/paths.py", root)) == ROUTING
        venv = f"{root}/.venv/lib/python3.11/site-packages"
        assert component_of(inside_project(f"{venv}/gunicorn/http/wsgi.py", root)) == gunicorn
