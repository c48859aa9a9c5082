"""The background writers: access log lines and metric updates leave the request thread, bounded."""

from __future__ import annotations

import json
import logging
import threading
import time

from gateway_project import access_log
from tests.support.observability import captured, sample

DROPPED = "gateway_access_log_dropped_total"


def record(number: int) -> dict[str, object]:
    """A small access log record."""
    return {"request_id": f"r{number}", "status": 200, "path": "/x"}


def test_a_full_queue_drops_and_counts_the_line_instead_of_blocking():
    writer = access_log.LineWriter(capacity=2)  # not started: nothing drains the queue
    before = sample(DROPPED)
    with captured("gateway.access") as lines:
        for number in range(5):
            writer.submit("2026-01-01T00:00:00.000Z", record(number))  # returns: never waits
        assert sample(DROPPED) == before + 3
        writer.start()
        writer.stop()
    assert [line["request_id"] for line in lines.records()] == ["r0", "r1"]


def test_lines_from_many_threads_all_arrive_in_order_per_thread():
    writer = access_log.LineWriter(capacity=10_000)
    writer.start()
    before = sample(DROPPED)

    def produce(thread: int) -> None:
        for number in range(250):
            writer.submit("2026-01-01T00:00:00.000Z", {"request_id": f"{thread}-{number}"})

    with captured("gateway.access") as lines:
        producers = [threading.Thread(target=produce, args=(t,)) for t in range(4)]
        for producer in producers:
            producer.start()
        for producer in producers:
            producer.join(30)
        writer.stop()
    ids = [line["request_id"] for line in lines.records()]
    assert len(ids) == 1000 and sample(DROPPED) == before
    for thread in range(4):
        assert [i for i in ids if i.startswith(f"{thread}-")] == [
            f"{thread}-{n}" for n in range(250)
        ]


def test_the_line_is_compact_json_with_the_timestamp_first():
    line = access_log.encode("2026-01-01T00:00:00.000Z", {"status": 200, "odd": object})
    assert line.startswith('{"ts":"2026-01-01T00:00:00.000Z","status":200,')
    assert json.loads(line)["odd"] == str(object)  # what JSON cannot hold is written as text


def test_a_failing_handler_on_the_writer_thread_is_counted_and_the_writer_goes_on():
    writer = access_log.LineWriter(capacity=10)
    before = sample("gateway_observability_failures_total", part="access_log")
    with captured("gateway.access") as lines:
        real_emit = lines.emit
        calls = []

        def fail_once(line: logging.LogRecord) -> None:
            calls.append(line)
            if len(calls) == 1:
                raise RuntimeError("disk full")
            real_emit(line)

        lines.emit = fail_once  # type: ignore[method-assign,assignment]
        lines.handleError = fail_once  # type: ignore[method-assign,assignment]
        writer.submit("2026-01-01T00:00:00.000Z", record(1))
        writer.submit("2026-01-01T00:00:00.000Z", record(2))
        writer.start()  # the first drain writes r1 and r2 as one record: the failing one
        deadline = time.monotonic() + 10
        while not calls and time.monotonic() < deadline:
            time.sleep(0.01)
        writer.submit("2026-01-01T00:00:00.000Z", record(3))
        writer.stop()
    assert sample("gateway_observability_failures_total", part="access_log") == before + 1
    assert [line["request_id"] for line in lines.records()] == ["r3"]


def test_one_drain_is_one_record_of_one_json_line_per_request():
    writer = access_log.LineWriter(capacity=10)
    with captured("gateway.access") as lines:
        for number in range(3):
            writer.submit("2026-01-01T00:00:00.000Z", record(number))
        writer.stop()  # not started: stop() drains on this thread, once
    assert len(lines.lines) == 1  # one handler call (one write) for the drain
    assert [line["request_id"] for line in lines.records()] == ["r0", "r1", "r2"]


def test_a_record_that_cannot_be_encoded_is_counted_and_the_rest_are_written():
    writer = access_log.LineWriter(capacity=10)
    before = sample("gateway_observability_failures_total", part="access_log")
    with captured("gateway.access") as lines:
        writer.start()
        writer.submit("2026-01-01T00:00:00.000Z", record(1))
        writer.submit("2026-01-01T00:00:00.000Z", {"request_id": "r2", "bytes_in": 2**64})
        writer.submit("2026-01-01T00:00:00.000Z", record(3))
        time.sleep(0.2)  # a drain or more: the writer thread must survive the bad record
        writer.submit("2026-01-01T00:00:00.000Z", record(4))
        writer.stop()
    assert sample("gateway_observability_failures_total", part="access_log") == before + 1
    assert [line["request_id"] for line in lines.records()] == ["r1", "r3", "r4"]


def test_start_and_stop_writer_switch_between_queued_and_direct_writes():
    with captured("gateway.access") as lines:
        access_log.start_writer()
        try:
            access_log.write(record(1))
        finally:
            access_log.stop_writer()  # writes what was queued
        access_log.write(record(2))  # direct again
    assert [line["request_id"] for line in lines.records()] == ["r1", "r2"]


def test_deferred_metric_updates_are_summed_and_none_is_lost():
    from gateway_project import metrics

    updates = metrics.DeferredUpdates(capacity=3, interval=60)  # only stop() flushes
    seen: list[float] = []
    updates.apply(seen.append, 1, additive=True)  # not started: applied at once
    assert seen == [1]
    updates.start()
    try:
        for _ in range(3):
            updates.apply(seen.append, 1, additive=True)
        updates.apply(seen.append, 0.5, additive=False)  # over capacity: applied at once
        assert seen == [1, 0.5]
    finally:
        updates.stop()  # applies the pending three as one increment of 3
    assert seen == [1, 0.5, 3]


def test_a_request_in_flight_is_counted_until_it_ends_and_cancels_out_unwritten():
    from gateway_project import metrics

    written: list[float] = []
    updates = metrics.DeferredUpdates(interval=60)  # only flush() applies
    updates.start()
    try:
        updates.apply(written.append, +1, additive=True)  # a request starts...
        updates.flush()
        assert written == [1]  # ...and shows as in flight while it runs
        updates.apply(written.append, -1, additive=True)  # it ends, another starts and ends
        updates.apply(written.append, +1, additive=True)
        updates.apply(written.append, -1, additive=True)
        updates.flush()
        assert written == [1, -1]
        updates.apply(written.append, +1, additive=True)
        updates.apply(written.append, -1, additive=True)
        updates.flush()
        assert written == [1, -1]  # started and ended within one interval: nothing written
    finally:
        updates.stop()


def test_the_in_flight_gauge_goes_through_the_deferred_updates(monkeypatch):
    from gateway_project import metrics

    applied: list[tuple[object, float, bool]] = []
    monkeypatch.setattr(
        metrics.deferred,
        "apply",
        lambda update, value, *, additive: applied.append((update, value, additive)),
    )
    metrics.change_in_flight(+1)
    metrics.change_in_flight(-1)
    assert applied == [(metrics.IN_FLIGHT.inc, 1, True), (metrics.IN_FLIGHT.inc, -1, True)]
