"""Empty the PostgreSQL test database between transactional tests with DELETE, not TRUNCATE.

Django empties the database after every `transaction=True` test with one TRUNCATE of all ~70
tables; PostgreSQL gives each truncated table new files, which costs seconds per test on a busy
machine. DELETE of the few rows a test leaves costs milliseconds and leaves the same state:
every table empty, sequences where they were (as Django's flush leaves them unless asked).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def deleting_sql_flush(truncating: Callable[..., list[str]]) -> Callable[..., list[str]]:
    """A `DatabaseOperations.sql_flush` for PostgreSQL that deletes rows; the original one
    (`truncating`) still serves what DELETE cannot do: resetting sequences and cascading."""

    def sql_flush(
        self: Any,
        style: Any,
        tables: list[str],
        *,
        reset_sequences: bool = False,
        allow_cascade: bool = False,
    ) -> list[str]:
        if not tables or reset_sequences or allow_cascade:
            return truncating(
                self, style, tables, reset_sequences=reset_sequences, allow_cascade=allow_cascade
            )
        # Django's foreign keys on PostgreSQL are DEFERRABLE: checked when the flush's
        # transaction commits, by which time every table is empty, so the order is free.
        # A key that is not deferrable would fail the flush loudly, never leave rows behind.
        deletes = [f"DELETE FROM {self.quote_name(table)};" for table in tables]
        return ["SET CONSTRAINTS ALL DEFERRED;", *deletes]

    return sql_flush
