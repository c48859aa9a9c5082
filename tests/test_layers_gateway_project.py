"""gateway_project is the ground: none of its modules imports an app above it.

Top-level and deferred (inside a function) imports both count. The apps hand the ground what
it needs through gateway_project/extensions.py and settings that name dotted paths.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
GROUND = ROOT / "gateway_project"
ABOVE = ("routing", "accounts", "quotas", "audit", "management", "console")

# The composition root still wires the apps together by import; each entry says why, and the
# layer work that removes it. Nothing else may join this list.
COMPOSITION_ROOT = {
    # JWT key and external-issuer settings are parsed (and refused with ImproperlyConfigured)
    # by accounts' parsers while settings load.
    "settings.py": {"accounts.jwt_issuers", "accounts.jwt_settings"},
    # The root URLconf names the apps' views; the management app's move rewrites it.
    "urls.py": {"accounts.mfa_views", "routing.console", "routing.portal", "routing.views"},
}


def imported_modules(source: str) -> set[str]:
    """Every module an import statement anywhere in `source` names (relative ones excluded)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def upward(names: set[str]) -> set[str]:
    """The names that belong to an app above the ground."""
    return {name for name in names if name.split(".")[0] in ABOVE}


def test_the_parser_sees_top_level_and_deferred_imports():
    source = (
        "import routing.table\n"
        "from accounts import models\n"
        "def f():\n"
        "    from quotas.flusher import start\n"
        "    import audit.registry as r\n"
        "class C:\n"
        "    def m(self):\n"
        "        from management.api import views\n"
        "from gateway_project import net\n"
        "import routingish\n"
    )
    assert upward(imported_modules(source)) == {
        "routing.table",
        "accounts",
        "accounts.models",
        "quotas.flusher",
        "quotas.flusher.start",
        "audit.registry",
        "management.api",
        "management.api.views",
    }


@pytest.mark.parametrize("path", sorted(GROUND.glob("*.py")), ids=lambda p: p.name)
def test_gateway_project_imports_no_app_above_it(path):
    found = upward(imported_modules(path.read_text()))
    allowed = COMPOSITION_ROOT.get(path.name, set())
    stray = {name for name in found if not any(name.startswith(ok) for ok in allowed)}
    assert not stray, f"gateway_project/{path.name} imports {sorted(stray)} from above it"


def test_the_composition_root_exceptions_are_still_needed():
    """An exception that no longer matches an import is removed from the list."""
    for name, allowed in COMPOSITION_ROOT.items():
        found = upward(imported_modules((GROUND / name).read_text()))
        for module in allowed:
            assert any(f == module or f.startswith(module + ".") for f in found), (name, module)
