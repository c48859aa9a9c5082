"""Rows shared by every test of a module, made once and rolled back after the module.

Django's TestCase.setUpTestData for pytest: the module's rows live in an outer transaction,
each test runs in a savepoint inside it (pytest-django's `db`), so a test's own changes are
undone after it and the shared rows after the module. Nothing is committed.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.db import transaction


@contextmanager
def module_transaction(django_db_blocker: Any) -> Iterator[None]:
    """Open the outer transaction; rows made (under `django_db_blocker.unblock()`) inside the
    block are seen by every test until the block ends, then rolled back."""
    with django_db_blocker.unblock():
        outer = transaction.atomic()
        outer.__enter__()
    try:
        yield
    finally:
        with django_db_blocker.unblock():
            transaction.set_rollback(True)
            outer.__exit__(None, None, None)
