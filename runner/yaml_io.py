"""Reading YAML text into plain Python values, with the line of every value. The only module that
imports ``yaml``.

Safe-load semantics (no Python tags), plus guards against hostile input: at most ``MAX_YAML_CHARS``
characters, at most ``MAX_VALUES`` values after expanding aliases (the "billion laughs" attack), no
recursive aliases, no merge keys (``<<``), and no deeper nesting than ``MAX_DEPTH``. Every failure is a
:class:`YamlError` whose message names the line and column where it has one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

MAX_YAML_CHARS = 1_000_000
MAX_VALUES = 20_000
MAX_DEPTH = 64

# A path to a value: mapping keys and list indexes (as Index) from the top of the document.
YamlPath = tuple[object, ...]


class Index(int):
    """A list index in a YamlPath, told apart from a mapping key that is a number."""


_MAP_TAG = "tag:yaml.org,2002:map"
_SEQ_TAG = "tag:yaml.org,2002:seq"
_MERGE_TAG = "tag:yaml.org,2002:merge"
_SCALAR_TAGS = tuple(
    f"tag:yaml.org,2002:{name}"
    for name in ("str", "int", "float", "bool", "null", "timestamp", "binary")
)


class YamlError(Exception):
    """The text is not a YAML document this loader accepts; the message says where and why."""


@dataclass
class YamlDocument:
    """A parsed document: the plain value, the 1-based line of each value and each key, and the
    keys that appeared twice in one mapping (YAML keeps the last; we report them)."""

    value: Any
    value_lines: dict[YamlPath, int] = field(default_factory=dict)
    key_lines: dict[YamlPath, int] = field(default_factory=dict)
    duplicate_keys: list[tuple[YamlPath, int]] = field(default_factory=list)


def parse_yaml(text: str) -> YamlDocument:
    """Parse one YAML document; raise YamlError (never anything else) when it cannot be read."""
    if len(text) > MAX_YAML_CHARS:
        raise YamlError(
            f"the file has {len(text):,} characters, more than the {MAX_YAML_CHARS:,} allowed; "
            "is this the right file?"
        )
    loader: yaml.SafeLoader | None = None
    try:
        loader = _DepthLimitedLoader(text)
        node = loader.get_single_node()
        document = YamlDocument(value=None)
        if node is not None:
            document.value = _Converter(loader, document).convert(node, (), 0)
        return document
    except yaml.MarkedYAMLError as error:
        raise YamlError(_describe_marked(error)) from None
    except yaml.reader.ReaderError as error:
        line, column = _line_column(text, error.position)
        raise YamlError(
            f"line {line}, column {column}: unacceptable character #x{error.character:04x} "
            "(binary data?); a bodywork.yaml is plain UTF-8 text"
        ) from None
    except yaml.YAMLError as error:
        raise YamlError(f"cannot read the YAML: {error}") from None
    except RecursionError:
        raise YamlError(
            f"the document is nested more than {MAX_DEPTH} levels deep; is this the right file?"
        ) from None
    except (ValueError, TypeError, OverflowError) as error:
        # e.g. `!!timestamp 2021-13-45` reaches datetime() and fails there
        raise YamlError(f"a value cannot be read: {error}") from None
    finally:
        if loader is not None:
            loader.dispose()


class _DepthLimitedLoader(yaml.SafeLoader):
    """SafeLoader that refuses deep nesting before Python's recursion limit is reached."""

    _depth = 0

    def compose_node(self, parent: Node | None, index: int) -> Node | None:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
                raise YamlError(
                    f"line {mark.line + 1}, column {mark.column + 1}: values are nested more "
                    f"than {MAX_DEPTH} levels deep; is this the right file?"
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _describe_marked(error: yaml.MarkedYAMLError) -> str:
    mark = error.problem_mark or error.context_mark
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    problem = error.problem or "invalid YAML"
    if error.context and problem.startswith("but "):
        problem = f"{error.context}, {problem}"
    elif error.context and error.context_mark is not None and error.context_mark is not mark:
        context_mark = error.context_mark
        problem += (
            f" ({error.context} at line {context_mark.line + 1}, column {context_mark.column + 1})"
        )
    if "\\t" in problem:
        fix = "indent with spaces, not tabs"
    elif "another document" in problem:
        fix = "a bodywork.yaml holds one document: remove the second '---' and what follows"
    else:
        fix = "check the indentation, and quote values that hold ': ' or start with a special character"
    return f"YAML syntax error at {where}{problem}; {fix}"


def _line_column(text: str, position: int) -> tuple[int, int]:
    before = text[:position]
    line = before.count("\n") + 1
    return line, position - (before.rfind("\n") + 1) + 1


class _Converter:
    """Turns the composed node graph into plain values, counting values to stop alias bombs."""

    def __init__(self, loader: yaml.SafeLoader, document: YamlDocument) -> None:
        self._loader = loader
        self._document = document
        self._count = 0
        self._active: set[int] = set()

    def convert(self, node: Node, path: YamlPath, depth: int) -> Any:
        self._count += 1
        line = node.start_mark.line + 1
        if self._count > MAX_VALUES:
            raise YamlError(
                f"line {line}: the document expands to more than {MAX_VALUES:,} values "
                "(through YAML aliases?); a bodywork.yaml needs far fewer"
            )
        if depth > MAX_DEPTH:
            raise YamlError(f"line {line}: values are nested more than {MAX_DEPTH} levels deep")
        self._document.value_lines.setdefault(path, line)
        if isinstance(node, ScalarNode):
            return self._scalar(node)
        if id(node) in self._active:
            raise YamlError(f"line {line}: a YAML alias refers to a value that contains itself")
        self._active.add(id(node))
        try:
            if isinstance(node, SequenceNode):
                self._check_tag(node, _SEQ_TAG)
                return [
                    self.convert(item, (*path, Index(index)), depth + 1)
                    for index, item in enumerate(node.value)
                ]
            if isinstance(node, MappingNode):
                self._check_tag(node, _MAP_TAG)
                return self._mapping(node, path, depth)
        finally:
            self._active.discard(id(node))
        raise YamlError(f"line {line}: unexpected YAML node {type(node).__name__}")

    def _mapping(self, node: MappingNode, path: YamlPath, depth: int) -> dict[object, Any]:
        result: dict[object, Any] = {}
        for key_node, value_node in node.value:
            key_line = key_node.start_mark.line + 1
            if key_node.tag == _MERGE_TAG:
                raise YamlError(
                    f"line {key_line}, column {key_node.start_mark.column + 1}: YAML merge keys "
                    "(<<) are not supported; write the keys out in full"
                )
            if not isinstance(key_node, ScalarNode):
                raise YamlError(
                    f"line {key_line}, column {key_node.start_mark.column + 1}: a key must be "
                    "a plain word, not a list or mapping"
                )
            self._count += 1
            key = self._scalar(key_node)
            child = (*path, key)
            if key in result:
                self._document.duplicate_keys.append((child, key_line))
            self._document.key_lines[child] = key_line
            result[key] = self.convert(value_node, child, depth + 1)
        return result

    def _scalar(self, node: ScalarNode) -> Any:
        self._check_tag(node, *_SCALAR_TAGS)
        try:
            return self._loader.construct_object(node, deep=True)
        except (ValueError, TypeError, OverflowError) as error:
            mark = node.start_mark
            raise YamlError(
                f"line {mark.line + 1}, column {mark.column + 1}: {node.value!r} cannot be read "
                f"as a {node.tag.rsplit(':', 1)[-1]} ({error}); quote it to make it a string"
            ) from None

    @staticmethod
    def _check_tag(node: Node, *expected: str) -> None:
        if node.tag not in expected:
            mark = node.start_mark
            raise YamlError(
                f"line {mark.line + 1}, column {mark.column + 1}: the YAML tag {node.tag!r} is "
                "not supported here; remove it"
            )
