"""bench/instructions.py's reading of callgrind's profiles and its link to bench/parts.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import instructions, parts


def test_a_threads_total_is_read_from_its_profile(tmp_path: Path):
    profile = tmp_path / "callgrind.out-01"
    profile.write_text(
        "version: 1\ncreator: callgrind-3.19.0\nsummary: 0\nfn=x\n1 5\ntotals: 519102753\n"
    )
    assert instructions._thread_total(profile) == 519_102_753


def test_a_profile_without_a_total_is_an_error_not_zero(tmp_path: Path):
    profile = tmp_path / "callgrind.out-01"
    profile.write_text("version: 1\nfn=x\n1 5\n")
    with pytest.raises(SystemExit, match="no total"):
        instructions._thread_total(profile)


def test_the_whole_request_is_parts_first_variant_and_names_need_no_worker():
    names = list(parts.variants(None))
    assert names[0] == instructions.WHOLE
    assert len(names) > 1


def test_keep_copies_the_request_threads_profile(tmp_path: Path, monkeypatch):
    def fake_valgrind(command, **_kwargs):
        out = next(a.split("=", 1)[1] for a in command if a.startswith("--callgrind-out-file="))
        log = next(a.split("=", 1)[1] for a in command if a.startswith("--log-file="))
        Path(log).write_text("==1== Collected : 4000\n")
        Path(f"{out}-01").write_text("version: 1\nfn=x\n1 5\ntotals: 1000\n")
        return instructions.subprocess.CompletedProcess(command, 0)

    monkeypatch.setattr(instructions.shutil, "which", lambda _name: "/usr/bin/valgrind")
    monkeypatch.setattr(instructions.subprocess, "run", fake_valgrind)
    kept = tmp_path / "request.out"

    assert instructions.count(10, "full", 0, keep=kept) == (100.0, 400.0)
    assert "totals: 1000" in kept.read_text()
