"""The environment variables the gateway reads, collected from its source (not a hand list).

Python code is scanned for `env_*("NAME")`, `os.environ.get("NAME")`, `os.environ["NAME"]`,
`os.getenv("NAME")` and `os.environ.setdefault("NAME")`; an f-string name such as
`f"GATEWAY_SERVICE_{...}_URL"` becomes a pattern (env.py's own generic
`f"{name}_FILE"` does not). `env_secret("NAME")` also reads `NAME_FILE`.
The Makefile is scanned for `$NAME` / `${NAME}`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
_SKIP_DIRS = {"tests", "bench", "var", "sdk", "deploy", "docs", "config", "migrations"}

_NAME = r"[A-Z][A-Z0-9_]*"
_LITERAL_READS = re.compile(
    r"""(?x)
    (?:\benv_(?P<helper>\w+)\(\s*                # gateway_project.env helpers
      | os\.environ\.get\(\s* | os\.getenv\(\s*
      | os\.environ\.setdefault\(\s* | os\.environ\[\s*)
    "(?P<name>"""
    + _NAME
    + r""")"
    """
)
_FSTRING_READS = re.compile(
    r"""(?:os\.environ\.get|os\.getenv|\benv_\w+)\(\s*f"(?P<prefix>[A-Z][A-Z0-9_]*)\{[^}]*\}(?P<suffix>[A-Z0-9_]*)\""""
    # A GATEWAY_ name built by a helper that another line reads (service_url_variable).
    r"""|\bf"(?P<gw_prefix>GATEWAY_[A-Z0-9_]*)\{[^}]*\}(?P<gw_suffix>[A-Z0-9_]*)\""""
)
_SHELL_READS = re.compile(r"\$\$?\{?(?P<name>" + _NAME + r")")

# Read by libraries or the interpreter, not by our code: each with who reads it.
THIRD_PARTY: dict[str, str] = {
    "DJANGO_SETTINGS_MODULE": "Django",
    "PROMETHEUS_MULTIPROC_DIR": "prometheus-client (multiprocess mode)",
    "PYTHONDONTWRITEBYTECODE": "the Python interpreter",
    "PYTHONUNBUFFERED": "the Python interpreter",
    "PATH": "the shell",
}


@dataclass(frozen=True)
class EnvNames:
    """Exact names and name patterns the gateway reads."""

    exact: frozenset[str]
    patterns: tuple[re.Pattern[str], ...]

    def reads(self, name: str) -> bool:
        """Whether setting `name` has an effect on the gateway."""
        return (
            name in self.exact
            or name in THIRD_PARTY
            or any(pattern.fullmatch(name) for pattern in self.patterns)
        )


def _python_sources(root: Path) -> list[Path]:
    sources = []
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root).parts
        if parts[0].startswith(".") or _SKIP_DIRS.intersection(parts):
            continue
        sources.append(path)
    return sources


def collect(root: Path = ROOT) -> EnvNames:
    """Scan the gateway's code and Makefile for the variables it reads."""
    exact: set[str] = set()
    patterns: list[re.Pattern[str]] = []
    for path in _python_sources(root):
        text = path.read_text()
        for match in _LITERAL_READS.finditer(text):
            exact.add(match["name"])
            if match["helper"] == "secret":
                exact.add(f"{match['name']}_FILE")
        for match in _FSTRING_READS.finditer(text):
            prefix = match["prefix"] or match["gw_prefix"]
            suffix = match["suffix"] if match["prefix"] else match["gw_suffix"]
            patterns.append(re.compile(f"{prefix}[A-Z0-9_]+{suffix}"))
    makefile = (root / "Makefile").read_text()
    exact.update(match["name"] for match in _SHELL_READS.finditer(makefile))
    return EnvNames(exact=frozenset(exact), patterns=tuple(patterns))
