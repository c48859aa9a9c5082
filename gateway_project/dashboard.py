"""Selectors for the console dashboard: traffic per route and consumer for the last hour/day."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field

from gateway_project import traffic

_TOP = 10
_CHART_WIDTH = 600
_CHART_HEIGHT = 80


@dataclass
class RouteStats:
    """One route's traffic in a window."""

    route: str
    requests: int = 0
    errors: int = 0
    rejections: int = 0
    total_ms: int = 0
    buckets: list[int] = field(default_factory=lambda: [0] * (len(traffic.LATENCY_BOUNDS_MS) + 1))
    p50_ms: float | None = None
    p95_ms: float | None = None
    share: float = 0.0  # requests relative to the busiest route, for the bar width

    @property
    def error_rate(self) -> float:
        """5xx answers as a percentage of requests."""
        return 100.0 * self.errors / self.requests if self.requests else 0.0

    @property
    def mean_ms(self) -> float:
        """Average total time."""
        return self.total_ms / self.requests if self.requests else 0.0


@dataclass
class Bar:
    """One column of the timeline chart (SVG coordinates)."""

    x: float
    width: float
    y: float
    height: float
    error_y: float
    error_height: float
    label: str


@dataclass
class WindowStats:
    """Everything the dashboard shows for one window."""

    title: str
    requests: int
    errors: int
    rejections: int
    routes: list[RouteStats]
    slowest: list[RouteStats]
    consumers: list[tuple[str, int, float]]
    timeline: list[Bar]
    peak: int
    axis_start: str
    step: str
    chart_width: int = _CHART_WIDTH
    chart_height: int = _CHART_HEIGHT

    @property
    def error_rate(self) -> float:
        """5xx answers as a percentage of all requests."""
        return 100.0 * self.errors / self.requests if self.requests else 0.0


def percentile_ms(buckets: list[int], q: float) -> float | None:
    """The q-quantile of a latency histogram, interpolated inside its bucket."""
    total = sum(buckets)
    if not total:
        return None
    bounds = traffic.LATENCY_BOUNDS_MS
    rank = q * total
    seen = 0
    for index, count in enumerate(buckets):
        if count and seen + count >= rank:
            low = bounds[index - 1] if index else 0
            high = bounds[index] if index < len(bounds) else low
            return round(low + (high - low) * (rank - seen) / count, 1)
        seen += count
    return float(bounds[-1])


def _route_stats(total: Counter[str]) -> dict[str, RouteStats]:
    routes: dict[str, RouteStats] = {}
    for name, value in total.items():
        kind, _, route = name.partition("|")
        if kind == "c" or not route:
            continue
        stats = routes.setdefault(route, RouteStats(route))
        if kind == "n":
            stats.requests += value
        elif kind == "e":
            stats.errors += value
        elif kind == "x":
            stats.rejections += value
        elif kind == "ms":
            stats.total_ms += value
        elif kind.startswith("b") and kind[1:].isdigit() and int(kind[1:]) < len(stats.buckets):
            stats.buckets[int(kind[1:])] += value
    for stats in routes.values():
        stats.p50_ms = percentile_ms(stats.buckets, 0.50)
        stats.p95_ms = percentile_ms(stats.buckets, 0.95)
    return routes


def _timeline(buckets: list[Counter[str]], labels: list[str]) -> tuple[list[Bar], int]:
    counts = [sum(v for k, v in bucket.items() if k.startswith("n|")) for bucket in buckets]
    errors = [sum(v for k, v in bucket.items() if k.startswith("e|")) for bucket in buckets]
    peak = max(counts, default=0)
    width = _CHART_WIDTH / max(len(buckets), 1)
    bars = []
    for index, (count, error_count) in enumerate(zip(counts, errors, strict=True)):
        height = (_CHART_HEIGHT - 4) * count / peak if peak else 0.0
        error_height = (_CHART_HEIGHT - 4) * error_count / peak if peak else 0.0
        bars.append(
            Bar(
                x=round(index * width, 1),
                width=round(max(width - 1, 1), 1),
                y=round(_CHART_HEIGHT - height, 1),
                height=round(height, 1),
                error_y=round(_CHART_HEIGHT - error_height, 1),
                error_height=round(error_height, 1),
                label=f"{labels[index]}: {count} requests, {error_count} errors",
            )
        )
    return bars, peak


def _window(
    title: str, buckets: list[Counter[str]], labels: list[str], *, axis_start: str, step: str
) -> WindowStats:
    total: Counter[str] = Counter()
    for bucket in buckets:
        total.update(bucket)
    routes = _route_stats(total)
    by_requests = sorted(routes.values(), key=lambda r: (-r.requests, r.route))[: _TOP * 2]
    busiest = by_requests[0].requests if by_requests else 0
    for stats in by_requests:
        stats.share = 100.0 * stats.requests / busiest if busiest else 0.0
    slowest = sorted(
        (r for r in routes.values() if r.p95_ms is not None),
        key=lambda r: (-(r.p95_ms or 0), r.route),
    )[:_TOP]
    consumer_counts = Counter(
        {name[2:]: value for name, value in total.items() if name.startswith("c|")}
    )
    top = consumer_counts.most_common(_TOP)
    most = top[0][1] if top else 0
    consumers = [(name, count, 100.0 * count / most) for name, count in top]
    timeline, peak = _timeline(buckets, labels)
    return WindowStats(
        title=title,
        requests=sum(r.requests for r in routes.values()),
        errors=sum(r.errors for r in routes.values()),
        rejections=sum(r.rejections for r in routes.values()),
        routes=by_requests,
        slowest=slowest,
        consumers=consumers,
        timeline=timeline,
        peak=peak,
        axis_start=axis_start,
        step=step,
    )


def _read(now: float | None) -> tuple[list[Counter[str]], list[str], list[Counter[str]], list[str]]:
    """(minute buckets, their labels, hour buckets, their labels), this process's buffer
    flushed first so pages show up-to-the-second numbers."""
    traffic.flush()
    now = time.time() if now is None else now
    this_minute = int(now // 60)
    this_hour = this_minute // 60
    minutes = list(range(this_minute - 59, this_minute + 1))
    hours = list(range(this_hour - 23, this_hour + 1))
    minute_buckets, hour_buckets = traffic.store().read(minutes=minutes, hours=hours)
    minute_labels = [time.strftime("%H:%M", time.gmtime(m * 60)) for m in minutes]
    hour_labels = [time.strftime("%d %H:00", time.gmtime(h * 3600)) for h in hours]
    return minute_buckets, minute_labels, hour_buckets, hour_labels


def traffic_windows(*, now: float | None = None) -> list[WindowStats]:
    """The last hour (per minute) and the last 24 hours (per hour)."""
    minute_buckets, minute_labels, hour_buckets, hour_labels = _read(now)
    return [
        _window("Last hour", minute_buckets, minute_labels, axis_start="60 min ago", step="minute"),
        _window("Last 24 hours", hour_buckets, hour_labels, axis_start="24 h ago", step="hour"),
    ]


def route_traffic(*, route: str, now: float | None = None) -> list[tuple[str, RouteStats]]:
    """One route's numbers (by its label, e.g. `ANY /api/v1/shop/**`) in the last hour and
    the last 24 hours; zeros for a window without its traffic."""
    minute_buckets, _, hour_buckets, _ = _read(now)
    windows = []
    for title, buckets in (("Last hour", minute_buckets), ("Last 24 hours", hour_buckets)):
        total: Counter[str] = Counter()
        for bucket in buckets:
            total.update({k: n for k, n in bucket.items() if k.partition("|")[2] == route})
        windows.append((title, _route_stats(total).get(route, RouteStats(route))))
    return windows
