"""The config examples users copy (README.md, docs/*.md, config/*.yaml) import as written.

In particular every role a route names is defined in the same example: a route never creates a
role, so an example that only names one would be refused.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from routing.configfile.service import config_import

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
CONFIG_FILES = [ROOT / "config" / "gateway.example.yaml", ROOT / "config" / "demo.yaml"]
_BLOCK = re.compile(r"^```ya?ml[ \t]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)


def _config_blocks() -> list[tuple[str, dict[str, Any]]]:
    """(name, document) of every YAML block of the docs that holds a `routes:` list."""
    found = []
    for document in DOCUMENTS:
        for number, text in enumerate(_BLOCK.findall(document.read_text()), start=1):
            parsed = yaml.safe_load(text)
            if isinstance(parsed, dict) and isinstance(parsed.get("routes"), list):
                found.append((f"{document.name} yaml block {number}", parsed))
    return found


BLOCKS = _config_blocks()


def test_the_docs_have_route_examples_naming_roles():
    # The check below must have something to check: the README's and identity.md's examples.
    naming = [name for name, doc in BLOCKS if any(r.get("roles") for r in doc["routes"])]
    assert {"README.md yaml block 1", "identity.md yaml block 1"} <= set(naming)


@pytest.mark.parametrize(("name", "document"), BLOCKS, ids=[name for name, _ in BLOCKS])
def test_every_role_a_route_example_names_is_defined_in_the_same_example(name, document):
    defined = {role["name"] for role in document.get("roles") or []}
    for route in document["routes"]:
        assert set(route.get("roles") or ()) <= defined, (name, route["path"])


WHOLE = [(name, doc) for name, doc in BLOCKS if "services" in doc]


@pytest.mark.django_db
@pytest.mark.parametrize(("name", "document"), WHOLE, ids=[name for name, _ in WHOLE])
def test_whole_file_examples_in_the_docs_import_cleanly(name, document):
    result = config_import(text=yaml.safe_dump(document))
    assert result.applied, name
    assert config_import(text=yaml.safe_dump(document)).changes == []


@pytest.mark.django_db
@pytest.mark.parametrize("path", CONFIG_FILES, ids=[p.name for p in CONFIG_FILES])
def test_the_shipped_config_files_import_cleanly(path):
    assert config_import(text=path.read_text()).applied
    assert config_import(text=path.read_text()).changes == []
