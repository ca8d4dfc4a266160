"""YAML to plain data, remembering where every key and value stands in the file."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from typing import Any

import yaml

from pipeline.config.envvars import EnvExpansionError, expand

ConfigPath = tuple[str | int, ...]

MAX_DEPTH = 64
"""Deepest nesting of mappings and lists: a config needs about 6; deeper ones would
exhaust the stack of a recursive reader."""
MAX_VALUES = 100_000
"""Most values a document may stand for, an alias counted again wherever it is used: a
config has hundreds; a few lines of aliases of aliases could otherwise stand for
billions ("billion laughs")."""


def dotted(path: ConfigPath) -> str:
    """`("pipelines", "landing", "sources", 0)` → `pipelines.landing.sources[0]`."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


@dataclasses.dataclass
class Locator:
    """Maps a config path to the 1-based line and column where it is written."""

    filename: str
    values: dict[ConfigPath, tuple[int, int]] = dataclasses.field(default_factory=dict)
    keys: dict[ConfigPath, tuple[int, int]] = dataclasses.field(default_factory=dict)
    broken: set[ConfigPath] = dataclasses.field(default_factory=set)
    """Values already reported (unset variable, bad tag): validation stays quiet about them."""

    def where(self, path: ConfigPath, *, key: bool = False) -> tuple[int, int]:
        """Position of `path` (its key when `key`), else of its nearest written ancestor."""
        probe = path
        while True:
            if key and probe in self.keys:
                return self.keys[probe]
            if probe in self.values:
                return self.values[probe]
            if not probe:
                return (1, 1)
            probe = probe[:-1]

    def problem(self, path: ConfigPath, message: str, *, key: bool = False) -> str:
        line, col = self.where(path, key=key)
        where = dotted(path)
        return f"{self.filename}:{line}:{col}: {where + ': ' if where else ''}{message}"


class _BoundedLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing documents nested deeper than MAX_DEPTH or that stand
    for more than MAX_VALUES values once aliases are expanded."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._weights: dict[int, int] = {}  # id(node) -> values it stands for, expanded

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        if self._depth >= MAX_DEPTH:
            peek: Any = self.peek_event  # untyped in types-PyYAML
            raise yaml.composer.ComposerError(
                None,
                None,
                f"nested more than {MAX_DEPTH} levels deep; a config needs far fewer",
                peek().start_mark,
            )
        self._depth += 1
        try:
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        if node is not None and id(node) not in self._weights:  # an alias is weighed already
            self._weigh(node)
        return node

    def _weigh(self, node: yaml.Node) -> None:
        children: list[yaml.Node] = []
        if isinstance(node, yaml.SequenceNode):
            children = node.value
        elif isinstance(node, yaml.MappingNode):
            children = [part for pair in node.value for part in pair]
        weight = 1 + sum(self._weights.get(id(child), 1) for child in children)
        if weight > MAX_VALUES:
            raise yaml.composer.ComposerError(
                None,
                None,
                f"this value stands for more than {MAX_VALUES:,} values once its aliases "
                "(*name) are expanded; write the shared part once, without aliases of aliases",
                node.start_mark,
            )
        self._weights[id(node)] = weight


class _Builder:
    def __init__(self, locator: Locator, environ: Mapping[str, str]) -> None:
        self.locator = locator
        self.environ = environ
        self.problems: list[str] = []
        self._scalars = yaml.SafeLoader("")
        self._open: set[int] = set()

    def _report(self, node: yaml.Node, path: ConfigPath, message: str) -> None:
        mark = node.start_mark
        self.problems.append(
            f"{self.locator.filename}:{mark.line + 1}:{mark.column + 1}: "
            f"{dotted(path) + ': ' if path else ''}{message}"
        )
        self.locator.broken.add(path)

    def build(self, node: yaml.Node, path: ConfigPath) -> Any:
        self.locator.values.setdefault(path, (node.start_mark.line + 1, node.start_mark.column + 1))
        if id(node) in self._open:
            self._report(node, path, "an alias may not refer to a node that contains it")
            return None
        self._open.add(id(node))
        try:
            if isinstance(node, yaml.MappingNode):
                return self._mapping(node, path)
            if isinstance(node, yaml.SequenceNode):
                return [self.build(child, (*path, i)) for i, child in enumerate(node.value)]
            assert isinstance(node, yaml.ScalarNode)
            return self._scalar(node, path)
        finally:
            self._open.discard(id(node))

    def _mapping(self, node: yaml.MappingNode, path: ConfigPath) -> dict[str, Any]:
        written = sum(1 for k, _ in node.value if k.tag != "tag:yaml.org,2002:merge")
        self._scalars.flatten_mapping(node)  # resolves `<<: *anchor` merge keys
        merged = len(node.value) - written  # flatten puts the merged pairs first
        out: dict[str, Any] = {}
        from_merge: set[str] = set()
        for index, (key_node, value_node) in enumerate(node.value):
            key = self._scalar(key_node, path) if isinstance(key_node, yaml.ScalarNode) else None
            if not isinstance(key, str | int | float | bool) or key is None:
                self.problems.append(self.locator.problem(path, "mapping keys must be plain text"))
                continue
            key = str(key)
            child = (*path, key)
            if key in from_merge:  # a key written (or merged later) overrides a merged one
                from_merge.discard(key)
                for table in (self.locator.values, self.locator.keys):
                    for stale in [p for p in table if p[: len(child)] == child]:
                        del table[stale]
            elif key in out:
                mark = key_node.start_mark
                self.problems.append(
                    f"{self.locator.filename}:{mark.line + 1}:{mark.column + 1}: "
                    f"{dotted(child)}: duplicate key {key!r} (the first one is at line "
                    f"{self.locator.keys[child][0]}); remove one"
                )
                continue
            self.locator.keys[child] = (
                key_node.start_mark.line + 1,
                key_node.start_mark.column + 1,
            )
            out[key] = self.build(value_node, child)
            if index < merged:
                from_merge.add(key)
        return out

    def _scalar(self, node: yaml.ScalarNode, path: ConfigPath) -> Any:
        text = node.value
        if "${" in text and node.tag == "tag:yaml.org,2002:str":
            try:
                text = expand(text, self.environ)
            except EnvExpansionError as exc:
                self._report(node, path, str(exc))
                return ""
            if node.style is None:  # a plain scalar is typed by what it expands to
                resolve: Any = self._scalars.resolve  # untyped in types-PyYAML
                tag = resolve(yaml.ScalarNode, text, (True, False))
                node = yaml.ScalarNode(tag, text, node.start_mark, node.end_mark)
            else:
                return text
        try:
            return self._scalars.construct_object(node, deep=True)
        except yaml.constructor.ConstructorError:
            raise
        except Exception:  # PyYAML's constructors raise bare ValueError, KeyError, ...
            tag = node.tag.rsplit(":", 1)[-1]
            self._report(node, path, f"{node.value!r} is not a valid !!{tag} value")
            return None


def parse_yaml(
    text: str, filename: str, environ: Mapping[str, str] | None = None
) -> tuple[Any, Locator, list[str]]:
    """Parse `text`; return the data, its locator and the located problems found so far."""
    locator = Locator(filename)
    try:
        loader = _BoundedLoader(text)
        try:
            node = loader.get_single_node()
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        return None, locator, [f"{filename}:{line}:{col}: invalid YAML: {exc.problem or exc}"]
    except yaml.YAMLError as exc:
        return None, locator, [f"{filename}:1:1: invalid YAML: {exc}"]
    if node is None:
        return None, locator, []
    builder = _Builder(locator, os.environ if environ is None else environ)
    try:
        data = builder.build(node, ())
    except yaml.constructor.ConstructorError as exc:
        mark = exc.problem_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        return None, locator, [f"{filename}:{line}:{col}: {exc.problem}"]
    return data, locator, builder.problems
