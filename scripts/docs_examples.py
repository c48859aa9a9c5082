"""Extract the ```python blocks of the docs into files, so mypy and the tests can check them.

    python scripts/docs_examples.py OUTPUT_DIR [DOC.md ...]

Writes OUTPUT_DIR/<doc>_<n>.py for the n-th python block of each document (default: every
docs/*.md and README.md) and prints the files' names. A block whose first line is
`# not checked` is left out (fragments that are not whole programs).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_BLOCK = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)


def python_blocks(markdown: str) -> list[str]:
    """The code of every ```python block of `markdown`, in order, except `# not checked` ones."""
    return [
        code for code in _BLOCK.findall(markdown) if not code.lstrip().startswith("# not checked")
    ]


def extract(output: Path, documents: list[Path]) -> list[Path]:
    """Write each block to OUTPUT/<doc>_<n>.py; the files written."""
    output.mkdir(parents=True, exist_ok=True)
    for stale in output.glob("*.py"):
        stale.unlink()
    written = []
    for document in documents:
        for number, code in enumerate(python_blocks(document.read_text()), start=1):
            path = output / f"{document.stem.lower().replace('-', '_')}_{number}.py"
            path.write_text(code)
            written.append(path)
    return written


def main(argv: list[str]) -> int:
    """Command line: OUTPUT_DIR [DOC.md ...]."""
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    documents = [Path(a) for a in argv[1:]] or [
        *sorted((ROOT / "docs").glob("*.md")),
        ROOT / "README.md",
    ]
    for path in extract(Path(argv[0]), documents):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
