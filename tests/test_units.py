"""Durations and sizes as written in config files and settings."""

from __future__ import annotations

import pytest

from gateway_project.units import format_duration_ms, parse_duration_ms, parse_size


@pytest.mark.parametrize(
    "text, ms",
    [("500ms", 500), ("30s", 30_000), ("5m", 300_000), ("1h", 3_600_000), ("1.5s", 1500)],
)
def test_durations_parse_to_milliseconds(text, ms):
    assert parse_duration_ms(text) == ms


@pytest.mark.parametrize("text", ["30", "30x", "", "s", "-1s", True, 30, "0.5ms"])
def test_bad_durations_are_rejected_with_a_hint(text):
    with pytest.raises(ValueError, match="500ms, 30s, 5m or 1h"):
        parse_duration_ms(text)


@pytest.mark.parametrize("ms", [1, 500, 1000, 90_000, 3_600_000, 5_400_000])
def test_formatted_durations_parse_back(ms):
    assert parse_duration_ms(format_duration_ms(ms)) == ms


@pytest.mark.parametrize(
    "text, size",
    [(1024, 1024), ("1024", 1024), ("512KiB", 524288), ("10MiB", 10485760), ("1KB", 1000)],
)
def test_sizes_parse_to_bytes(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["10 potatoes", "-5", -5, "1.5MiB"])
def test_bad_sizes_are_rejected(text):
    with pytest.raises(ValueError, match="512KiB"):
        parse_size(text)
