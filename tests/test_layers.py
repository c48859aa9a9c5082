"""The apps import only downward: management → routing → quotas → accounts → audit → gateway_project.

Each app may import the apps below it and never one above:

    management       the management REST API, console pages, docs portal
    routing          services, routes, the proxy and the upstream client
    quotas           allowances and rate-limit policies (they name accounts' users, roles, clients)
    accounts         users, roles, permissions, API clients and keys
    audit            change history and change sets
    gateway_project  the ground: settings, errors, middleware, observability

accounts and quotas share a level in the design; the code settles their order: a quota belongs to
a user, role or client (quotas imports accounts.models), and accounts never needs a quota. So
quotas sits above accounts and an import of quotas from accounts is upward.

Every import counts: top level and deferred (inside a function or an `if TYPE_CHECKING:` block),
`import x` and `from x import y`, relative imports resolved against the importing module. Dotted
names in strings (settings, `include("app.urls")`) are Django's wiring, not imports, and are not
read. The entry point (the root URLconf) wires every app together and may import any of them. tests/ and scripts/ stand outside the layers.

Known upward imports waiting for another change are in ALLOWED, each with its reason; an entry
whose import is gone fails the test, so it is deleted once the change is merged.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Lowest first: an app may import the ones before it.
LAYERS = ("gateway_project", "audit", "accounts", "quotas", "routing", "management")
RANK = {app: rank for rank, app in enumerate(LAYERS)}

# Top-level packages outside the layers: they may import any app.
OUTSIDE_LAYERS = {
    "tests": "the test suite exercises every app",
    "scripts": "developer tools run from make targets",
    "bench": "the benchmark drives a running gateway from outside",
}

# Django imports these only after every app is loaded; they wire the apps together.
ENTRY_POINTS = {
    "gateway_project/urls.py": "the root URLconf mounts each app's pages and URLconfs",
}

# (importing file, imported module) -> why it is still there. Delete an entry once its import is
# gone: the test fails on a stale entry.
ALLOWED = {
    # settings parses the JWT keys and external issuers with accounts' parsers while settings
    # load, so a bad value is refused with ImproperlyConfigured naming the variable. Next: accounts
    # reads its own settings object, as gateway_project/area_settings.py does for metrics.
    ("gateway_project/settings.py", "accounts.jwt_issuers"): "JWT settings parsed while loading",
    ("gateway_project/settings.py", "accounts.jwt_settings"): "JWT settings parsed while loading",
}


def module_name(path: Path) -> list[str]:
    """The dotted module name of a file under ROOT, as parts (a package's __init__ is the package)."""
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return parts[:-1] if parts[-1] == "__init__" else parts


def imported_modules(source: str, module: list[str], *, is_package: bool) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in `source`, at any depth."""
    found: list[tuple[int, str]] = []
    package = module if is_package else module[:-1]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                found.append((node.lineno, node.module or ""))
                continue
            # `from .. import x` climbs level - 1 packages above the module's own package.
            if node.level - 1 >= len(package):
                raise AssertionError(f"{'.'.join(module)}: relative import beyond the top")
            base = package[: len(package) - (node.level - 1)]
            found.append((node.lineno, ".".join([*base, *filter(None, [node.module])])))
    return found


def upward_imports() -> list[tuple[str, int, str]]:
    """(file, line, module) of every import of a higher layer, outside the entry points."""
    violations = []
    for app in LAYERS:
        for path in sorted((ROOT / app).rglob("*.py")):
            relative = path.relative_to(ROOT).as_posix()
            if relative in ENTRY_POINTS:
                continue
            source = path.read_text(encoding="utf-8")
            imports = imported_modules(
                source, module_name(path), is_package=path.name == "__init__.py"
            )
            for line, name in imports:
                target = name.split(".")[0]
                if target != app and RANK.get(target, -1) > RANK[app]:
                    violations.append((relative, line, name))
    return violations


def test_no_app_imports_a_layer_above_it():
    unexplained = [v for v in upward_imports() if (v[0], v[2]) not in ALLOWED]
    assert not unexplained, (
        "Upward imports (see tests/test_layers.py for the order):\n"
        + "\n".join(f"  {file}:{line}: imports {name}" for file, line, name in unexplained)
    )


def test_every_allowed_upward_import_still_exists():
    present = {(file, name) for file, _, name in upward_imports()}
    stale = sorted(set(ALLOWED) - present)
    assert not stale, f"Gone, so delete these entries from ALLOWED: {stale}"


def test_every_top_level_package_has_a_layer_or_a_reason():
    packages = {p.parent.name for p in ROOT.glob("*/__init__.py")}
    assert packages == set(LAYERS) | set(OUTSIDE_LAYERS)
    assert all((ROOT / entry).is_file() for entry in ENTRY_POINTS)


@pytest.mark.parametrize(
    ("source", "module", "is_package", "expected"),
    [
        ("import routing.models", ["audit", "selectors"], False, "routing.models"),
        ("from routing import models", ["audit", "selectors"], False, "routing"),
        ("from . import views", ["routing", "api", "urls"], False, "routing.api"),
        ("from .views import X", ["routing", "api"], True, "routing.api.views"),
        ("from ..models import Route", ["routing", "api", "views"], False, "routing.models"),
        ("from .. import table", ["routing", "api"], True, "routing"),
        (
            "def f():\n    if True:\n        from management.api import urls\n",
            ["routing", "admin"],
            False,
            "management.api",
        ),
        (
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import quotas.models\n",
            ["accounts", "models"],
            False,
            "quotas.models",
        ),
    ],
)
def test_imports_are_read_at_any_depth_and_relative_ones_resolved(
    source, module, is_package, expected
):
    names = [name for _, name in imported_modules(source, module, is_package=is_package)]
    assert expected in names


def test_an_upward_import_is_reported_with_its_file_and_line(tmp_path, monkeypatch):
    for app in LAYERS:
        (tmp_path / app).mkdir()
        (tmp_path / app / "__init__.py").write_text("")
    (tmp_path / "audit" / "ok.py").write_text("import gateway_project.errors\n")
    (tmp_path / "accounts" / "bad.py").write_text("\n\ndef f():\n    from quotas import models\n")
    monkeypatch.setattr(f"{__name__}.ROOT", tmp_path)
    assert upward_imports() == [("accounts/bad.py", 4, "quotas")]


def test_a_relative_import_beyond_the_top_is_refused():
    with pytest.raises(AssertionError, match="beyond the top"):
        imported_modules("from .. import x", ["audit", "selectors"], is_package=False)
