"""Reading a config document's YAML safely: no aliases, bounded nesting, bounded size.

A few hundred bytes of YAML aliases expand into gigabytes (the "billion laughs"), and a few
thousand nested brackets exhaust Python's recursion limit in PyYAML's composer. Both are
refused here while the document is being composed, before anything is built from it, with the
place where the trouble starts. The size limit is checked before parsing at all.
"""

from __future__ import annotations

from typing import Any

import yaml
from yaml.events import AliasEvent, CollectionStartEvent
from yaml.nodes import Node

# Far deeper than any real config (services[0].targets[0] is four levels), far shallower than
# the recursion limit of the composer, the constructor and our own checks.
MAX_DEPTH = 50


class DocumentRefused(yaml.MarkedYAMLError):
    """The document uses a YAML feature the gateway refuses; `problem_mark` says where."""

    def __init__(self, problem: str, mark: Any) -> None:
        super().__init__(problem=problem, problem_mark=mark)


class ConfigLoader(yaml.SafeLoader):
    """A SafeLoader that refuses aliases, anchors and deep nesting while composing."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def fetch_flow_collection_start(self, token_class: Any) -> None:
        """Refuse a `[` or `{` past MAX_DEPTH as the scanner meets it.

        The scanner looks ahead up to 1,024 characters for a possible key at every flow level,
        so thousands of `[` would cost it seconds before the composer saw the first of them.
        """
        if self.flow_level >= MAX_DEPTH:
            raise DocumentRefused(
                f"nesting is deeper than {MAX_DEPTH} levels; a config file needs only a few",
                self.get_mark(),
            )
        super().fetch_flow_collection_start(token_class)

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        """Compose one node, refusing an alias or anchor and nesting beyond MAX_DEPTH."""
        event = self.peek_event()
        if isinstance(event, AliasEvent):
            # Refused before it is resolved: an alias is never expanded, however many there are.
            raise DocumentRefused(
                f"YAML aliases (*{event.anchor}) are not accepted; write the value out",
                event.start_mark,
            )
        if getattr(event, "anchor", None) is not None:
            raise DocumentRefused(
                f"YAML anchors (&{event.anchor}) are not accepted; write the value out "
                "wherever it is needed",
                event.start_mark,
            )
        if not isinstance(event, CollectionStartEvent):
            return super().compose_node(parent, index)
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise DocumentRefused(
                    f"nesting is deeper than {MAX_DEPTH} levels; a config file needs only a few",
                    event.start_mark,
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def load_document(text: str) -> tuple[Node | None, Any]:
    """The composed node tree (for line numbers) and the built document of `text`.

    Raises yaml.YAMLError (DocumentRefused for the refusals above) with a mark when known.
    """
    loader = ConfigLoader(text)
    try:
        node = loader.get_single_node()
        document = loader.construct_document(node) if node is not None else None
    finally:
        loader.dispose()
    return node, document


def size_overrun_line(text: str, limit: int) -> int:
    """The line on which `text`, counted in UTF-8 bytes, passes `limit` bytes."""
    head = text.encode("utf-8", "surrogatepass")[:limit].decode("utf-8", errors="ignore")
    return head.count("\n") + 1
