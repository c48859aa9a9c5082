"""`make audit`'s verdict on pip-audit reports (the service itself is not called here)."""

from __future__ import annotations

from scripts.dependency_audit import verdict


def _dep(name: str, *vulns: tuple[str, list[str]]) -> dict:
    return {
        "name": name,
        "version": "1.0",
        "vulns": [{"id": vid, "fix_versions": fixes} for vid, fixes in vulns],
    }


def test_a_vulnerability_with_a_fix_fails_the_audit():
    status, lines = verdict({"dependencies": [_dep("django", ("PYSEC-1", ["1.1"])), _dep("x")]})
    assert status == 1
    assert any("VULNERABLE django 1.0: PYSEC-1 (fixed in 1.1)" in line for line in lines)


def test_a_vulnerability_without_a_fix_only_warns():
    status, lines = verdict({"dependencies": [_dep("django", ("GHSA-2", []))]})
    assert status == 0
    assert any(line.startswith("warning: django 1.0: GHSA-2") for line in lines)


def test_clean_report_passes():
    status, lines = verdict({"dependencies": [_dep("django"), _dep("redis")]})
    assert (status, lines[-1]) == (0, "No known vulnerability with a fix in 2 pinned dependencies.")


def test_unreachable_service_warns_clearly_and_passes():
    report = {"dependencies": [{"name": "django", "skip_reason": "Dependency not found on PyPI"}]}
    status, lines = verdict(report)
    assert status == 0
    assert "NO dependency was audited" in lines[-1]
