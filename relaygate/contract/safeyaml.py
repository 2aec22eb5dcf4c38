"""A YAML loader for documents users send: bounded in size, nesting and alias expansion.

``yaml.safe_load`` refuses dangerous tags but not an alias bomb: nine levels
of nine aliases ("billion laughs", ~400 bytes) become 10^9 values as soon as
anything walks the result (JSON encoding, a bundle build, Rego's data). So a
user document is composed by :class:`BoundedLoader`, which keeps, for every
node, its *expanded weight*: 1 per node plus the length of each scalar,
counting a node once per place an alias puts it. An alias is allowed (anchors
and merge keys are ordinary YAML authors use) but the document's expanded
weight may not exceed ``max_expanded``; the weight is computed bottom-up as
nodes are composed, so a bomb is refused after composing its ~400 bytes, in
microseconds, never after expanding it. Aliases to an enclosing node
(recursive structures) are refused outright, and nesting deeper than
``max_depth`` is refused before PyYAML's recursive composer could hit
Python's recursion limit.

Events come from libyaml's C parser when PyYAML has it (about 3x faster than
the pure-Python scanner); composing stays in Python so the bounds apply. Even
so a document costs milliseconds per kilobyte, so the control plane parses
off its event loop and caps the source at :data:`MAX_SOURCE_BYTES`.

Operator files (config directory, platform policy data) are trusted and keep
``yaml.safe_load``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import yaml
from yaml.composer import Composer, ComposerError
from yaml.constructor import SafeConstructor
from yaml.events import Event
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.resolver import Resolver

if TYPE_CHECKING:
    from builtins import _ClassInfo  # isinstance's second argument, as Parser.check_event takes it

MAX_SOURCE_BYTES = 256 * 1024  # a policy document (YAML text) as sent to the API
MAX_DATA_BYTES = 256 * 1024  # a policy's data, encoded as JSON (what the bundle carries)
MAX_DEPTH = 64  # nesting of collections
MAX_EXPANDED = 1024 * 1024  # expanded weight (≈ characters + nodes) after aliases


class _Bounds(Composer):
    """The bounded compose_node; mixed into a loader whose events come from either parser.

    A Composer (its compose_node is the one overridden); the event methods below come from
    the parser the loader mixes in after it (yaml.parser.Parser or libyaml's CParser).
    """

    max_depth, max_expanded = MAX_DEPTH, MAX_EXPANDED

    if TYPE_CHECKING:
        # compose_node runs only while an event is pending, so peek_event has one to return.
        def check_event(self, *choices: _ClassInfo) -> bool: ...
        def peek_event(self) -> Event: ...

    def _init_bounds(self, max_depth: int, max_expanded: int) -> None:
        self.max_depth, self.max_expanded = max_depth, max_expanded
        self._depth = 0
        self._aliases = 0
        self._weights: dict[int, int] = {}

    def compose_node(self, parent: Node | None, index: int) -> Node | None:
        # Any: a pure-Python or a libyaml Mark; ComposerError takes either at run time (PyYAML's
        # own C parser raises its errors with libyaml marks), its stub names only the former.
        mark: Any
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark
            node = super().compose_node(parent, index)
            if id(node) not in self._weights:  # the anchor's node is still being composed
                raise ComposerError(
                    None, None, "an alias refers to a node that contains it (recursive aliases are not allowed)", mark
                )
            self._aliases += 1
            return node
        mark = self.peek_event().start_mark
        self._depth += 1
        if self._depth > self.max_depth:
            raise ComposerError(None, None, f"nesting deeper than {self.max_depth} levels", mark)
        node = super().compose_node(parent, index)
        self._depth -= 1
        w = self._weights
        if isinstance(node, ScalarNode):
            weight = 1 + len(node.value)
        elif isinstance(node, SequenceNode):
            weight = 1 + sum(w[id(c)] for c in node.value)
        elif isinstance(node, MappingNode):
            weight = 1 + sum(w[id(k)] + w[id(v)] for k, v in node.value)
        else:  # pragma: no cover - PyYAML has no other node kinds
            weight = 1
        w[id(node)] = weight
        if weight > self.max_expanded:
            what = "aliases expand the document" if self._aliases else "the document expands"
            raise ComposerError(
                None, None, f"{what} beyond {self.max_expanded} characters (alias expansion budget)", mark
            )
        return node


class BoundedLoader(_Bounds, yaml.SafeLoader):
    """Pure-Python SafeLoader that refuses deep nesting, recursive aliases and alias expansion past a budget."""

    def __init__(self, stream: str | bytes, max_depth: int = MAX_DEPTH, max_expanded: int = MAX_EXPANDED) -> None:
        yaml.SafeLoader.__init__(self, stream)
        self._init_bounds(max_depth, max_expanded)


# The loader tried first: libyaml's events when PyYAML has them, else the pure-Python one.
_FAST_LOADER: type[BoundedLoader] | type[CBoundedLoader]
try:
    from yaml._yaml import CParser
except ImportError:  # PyYAML without libyaml
    _FAST_LOADER = BoundedLoader
else:

    class CBoundedLoader(_Bounds, Composer, CParser, SafeConstructor, Resolver):
        """The same, on libyaml's events: Composer (Python) comes before CParser so its
        get_single_node/compose_node, and so the bounds, are the ones used."""

        def __init__(self, stream: str | bytes, max_depth: int = MAX_DEPTH, max_expanded: int = MAX_EXPANDED) -> None:
            CParser.__init__(self, stream)
            Composer.__init__(self)
            SafeConstructor.__init__(self)
            Resolver.__init__(self)
            self._init_bounds(max_depth, max_expanded)

    _FAST_LOADER = CBoundedLoader


def compose_and_load(text: str, max_depth: int = MAX_DEPTH, max_expanded: int = MAX_EXPANDED) -> tuple[Any, Any]:
    """(root node, Python value) of one YAML document, within the bounds; raises yaml.YAMLError."""
    try:
        return _load(_FAST_LOADER, text, max_depth, max_expanded)
    except yaml.YAMLError:
        if _FAST_LOADER is BoundedLoader:
            raise
        # libyaml words and places some errors differently: report what the pure-Python
        # parser says (the line and column authors have always been shown).
        return _load(BoundedLoader, text, max_depth, max_expanded)


def _load(
    cls: type[BoundedLoader] | type[CBoundedLoader], text: str, max_depth: int, max_expanded: int
) -> tuple[Any, Any]:
    loader = cls(text, max_depth, max_expanded)
    try:
        node = loader.get_single_node()
        value = loader.construct_document(node) if node is not None else None
        return node, value
    finally:
        loader.dispose()
