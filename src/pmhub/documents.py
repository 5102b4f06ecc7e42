"""User-supplied JSON and YAML, parsed within limits.

Every place that parses a document a user gives pmhub (cohort definitions, check files,
policies) goes through :func:`parse_json`, :func:`parse_yaml` or :func:`read`. They refuse,
with the caller's typed error:

- a document larger than ``max_bytes`` (checked before it is read or parsed);
- nesting deeper than ``max_depth`` (JSON is scanned before parsing, so a 10,000-deep
  array cannot exhaust the stack; YAML is checked as it is composed, aliases included);
- YAML aliases beyond ``max_aliases``, a recursive alias, or a document whose aliases
  expand to more than ``max_nodes`` nodes (the "billion laughs" bomb: nine anchors of
  nine aliases each expand to 387 million nodes from a few hundred bytes, and any code
  that walks the result hangs);
- a key given twice in one mapping (JSON and YAML keep the last silently);
- JSON's non-standard ``NaN`` and ``Infinity``.

YAML runs on PyYAML's safe loader (no tags that construct objects).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from pmhub.errors import PmhubError

# called as error(message); a layer passes its own error class
ErrorClass = Callable[..., PmhubError]


@dataclass(frozen=True)
class Limits:
    max_bytes: int = 1 << 20
    max_depth: int = 64
    max_aliases: int = 1_000
    max_nodes: int = 1_000_000  # mapping keys, values and list items, aliases expanded


class DocumentLimitError(ValueError):
    """A document broke a limit or a rule; the caller turns it into its typed error."""


# --- JSON ------------------------------------------------------------------------------

# a string (escapes included) or one bracket: strings are skipped, brackets counted
_JSON_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]', re.DOTALL)


def _json_depth_within(text: str, max_depth: int) -> None:
    depth = 0
    for match in _JSON_TOKENS.finditer(text):
        token = match.group()
        if token in "[{":
            depth += 1
            if depth > max_depth:
                line = text.count("\n", 0, match.start()) + 1
                raise DocumentLimitError(f"nested more than {max_depth} levels deep (line {line})")
        elif token in "]}":
            depth -= 1


def _no_constant(name: str) -> Any:
    raise DocumentLimitError(f"{name} is not a JSON number")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise DocumentLimitError(f"the key {key!r} appears twice in one object")
        out[key] = value
    return out


def _size_within(text: str | bytes, limits: Limits) -> str:
    size = len(text) if isinstance(text, bytes) else len(text.encode("utf-8", "surrogatepass"))
    if size > limits.max_bytes:
        raise DocumentLimitError(f"it is larger than {_size(limits.max_bytes)}")
    if isinstance(text, bytes):
        try:
            return text.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise DocumentLimitError(f"it is not UTF-8 text ({exc.reason})") from None
    return text


def _json(text: str, limits: Limits) -> Any:
    _json_depth_within(text, limits.max_depth)
    try:
        return json.loads(text, parse_constant=_no_constant, object_pairs_hook=_unique_keys)
    except json.JSONDecodeError as exc:
        raise DocumentLimitError(f"{exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except RecursionError:  # the scan above bounds depth; a deep call stack still might
        raise DocumentLimitError("nested too deeply") from None
    except ValueError as exc:  # e.g. an integer of more digits than Python converts
        raise DocumentLimitError(_value_error(exc)) from None


def _value_error(exc: Exception) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if "integer string conversion" in text:
        return "a number has more than 4,300 digits"
    return text


def parse_json(
    text: str | bytes, *, source: str, error: ErrorClass, limits: Limits = Limits()
) -> Any:
    """A JSON document within ``limits``, or ``error("SOURCE is not valid JSON: …")``."""
    try:
        return _json(_size_within(text, limits), limits)
    except DocumentLimitError as exc:
        raise error(f"{source} is not valid JSON: {exc}") from None


# --- YAML ------------------------------------------------------------------------------


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _measure(root: yaml.Node, limits: Limits) -> None:
    """Nodes and depth of the document with every alias expanded, computed once per node
    (iteratively: aliases can stack depth beyond what recursion would survive)."""
    sizes: dict[int, int] = {}
    depths: dict[int, int] = {}
    on_path: set[int] = set()  # the nodes being expanded: an alias to one is a cycle
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, expanded = stack.pop()
        key = id(node)
        if expanded:
            kids = _children(node)
            sizes[key] = 1 + sum(sizes[id(k)] for k in kids)
            depths[key] = 1 + max((depths[id(k)] for k in kids), default=0)
            on_path.discard(key)
            if sizes[key] > limits.max_nodes:
                raise DocumentLimitError(
                    f"its aliases expand to more than {limits.max_nodes:,} nodes"
                )
            if depths[key] > limits.max_depth + 1:  # scalars count as a level here
                raise DocumentLimitError(f"nested more than {limits.max_depth} levels deep")
            continue
        if key in sizes:
            continue
        if key in on_path:
            raise DocumentLimitError("an alias refers to a node that contains it (recursive)")
        on_path.add(key)
        stack.append((node, True))
        stack.extend((k, False) for k in _children(node) if id(k) not in sizes)


def _loader(limits: Limits) -> type[yaml.SafeLoader]:
    class Loader(yaml.SafeLoader):
        """The safe loader, counting aliases and depth as the document is composed."""

        aliases = 0
        depth = 0

        def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
            if self.check_event(yaml.AliasEvent):
                self.aliases += 1
                if self.aliases > limits.max_aliases:
                    raise DocumentLimitError(f"it uses more than {limits.max_aliases:,} aliases")
            self.depth += 1
            try:
                if self.depth > limits.max_depth + 1:
                    raise DocumentLimitError(f"nested more than {limits.max_depth} levels deep")
                return super().compose_node(parent, index)
            finally:
                self.depth -= 1

        def get_single_node(self) -> yaml.Node | None:
            node = super().get_single_node()
            if node is not None:
                _measure(node, limits)
            return node

        def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> Any:
            seen: set[Any] = set()
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=deep)
                if not isinstance(key, str | int | float | bool):
                    continue  # the constructor itself refuses unhashable keys
                if key in seen:
                    raise DocumentLimitError(
                        f"the key {key!r} appears twice in one mapping (line "
                        f"{key_node.start_mark.line + 1})"
                    )
                seen.add(key)
            return super().construct_mapping(node, deep=deep)

    return Loader


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """The parser's problem and where it is, without its echo of the source text."""
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem:
        mark = exc.problem_mark
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        return f"{exc.problem}{where}"
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def _yaml(text: str, limits: Limits) -> Any:
    try:
        return yaml.load(text, Loader=_loader(limits))  # a SafeLoader subclass: no object tags
    except DocumentLimitError:
        raise
    except yaml.YAMLError as exc:
        raise DocumentLimitError(_yaml_problem(exc)) from None
    except RecursionError:
        raise DocumentLimitError("nested too deeply") from None
    except (ValueError, TypeError, OverflowError) as exc:  # a scalar its tag cannot take
        raise DocumentLimitError(_value_error(exc)) from None


def parse_yaml(
    text: str | bytes, *, source: str, error: ErrorClass, limits: Limits = Limits()
) -> Any:
    """A YAML document within ``limits``, or ``error("SOURCE is not valid YAML: …")``."""
    try:
        return _yaml(_size_within(text, limits), limits)
    except DocumentLimitError as exc:
        raise error(f"{source} is not valid YAML: {exc}") from None


def parse(text: str | bytes, *, source: str, error: ErrorClass, limits: Limits = Limits()) -> Any:
    """JSON when the text starts with ``{`` or ``[``, YAML otherwise (JSON is YAML, but
    the JSON parser is faster and its messages are plainer)."""
    try:
        decoded = _size_within(text, limits)
        if decoded.lstrip().startswith(("{", "[")):
            return _json(decoded, limits)
        return _yaml(decoded, limits)
    except DocumentLimitError as exc:
        raise error(f"{source} is neither valid JSON nor YAML: {exc}") from None


def read_bytes(
    path: Path, *, error: ErrorClass, limits: Limits = Limits(), what: str = "file"
) -> bytes:
    """At most ``max_bytes`` of a file: a larger one is refused without being read."""
    try:
        with path.open("rb") as handle:
            data = handle.read(limits.max_bytes + 1)
    except OSError as exc:
        raise error(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    if len(data) > limits.max_bytes:
        raise error(f"{what} {path} is larger than {_size(limits.max_bytes)}")
    return data


def read(
    path: Path,
    *,
    error: ErrorClass,
    limits: Limits = Limits(),
    what: str = "file",
    kind: str = "auto",
) -> Any:
    """Read and parse a JSON or YAML file within ``limits`` (``kind``: auto, json, yaml)."""
    data = read_bytes(path, error=error, limits=limits, what=what)
    parser = {"auto": parse, "json": parse_json, "yaml": parse_yaml}[kind]
    return parser(data, source=f"{what} {path}", error=error, limits=limits)


def _size(n: int) -> str:
    return f"{n // (1 << 20)} MiB" if n % (1 << 20) == 0 else f"{n // 1024:,} KiB"
