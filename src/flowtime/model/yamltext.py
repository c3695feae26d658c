"""
YAML text -> plain Python data plus the source position of every value.

PyYAML composes a node tree that keeps line/column marks; we build the Python
values ourselves so that (a) every mapping value and sequence item keeps its
position for error messages, (b) duplicate keys are reported instead of
silently overwritten, and (c) alias expansion ("billion laughs") is bounded
before anything downstream walks the data. Nesting depth is checked on libyaml's
event stream before composing: the C composer recurses once per level and a
document such as ``"[" * 100000`` would overflow the C stack (a crash, not an
exception).
"""

from __future__ import annotations

import dataclasses
import functools
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from types import GeneratorType
from typing import Any

import yaml
from yaml.constructor import SafeConstructor
from yaml.events import MappingEndEvent, MappingStartEvent, SequenceEndEvent, SequenceStartEvent
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from flowtime.errors import LimitExceeded, ModelSyntaxError, Problem

try:  # libyaml is in the PyYAML wheels; the pure-Python loader is ~10x slower.
    _Loader: Any = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - depends on the PyYAML build
    _Loader = yaml.SafeLoader

_STR_TAG = "tag:yaml.org,2002:str"
_SEQ_TAG = "tag:yaml.org,2002:seq"
_MAP_TAG = "tag:yaml.org,2002:map"
_INT_TAG = "tag:yaml.org,2002:int"
_FLOAT_TAG = "tag:yaml.org,2002:float"


class _TagLoader(_Loader):  # type: ignore[misc]
    """
    The safe loader with the resolver's per-node work cut to what it does when
    no path resolver is registered (none is, for the safe loaders): the
    composer calls ``descend_resolver(parent, index)``, ``resolve(...)`` and
    ``ascend_resolver()`` for every node, and the first and last only keep the
    path resolvers' stack. Used only while ``_tag_loader_applies()``.
    """

    # Builtins taking the same arguments and doing nothing that matters (types do not bind as methods).
    descend_resolver = slice
    ascend_resolver = tuple

    def resolve(self, kind: Any, value: Any, implicit: Any) -> str:
        # Resolver.resolve without the path resolvers: a plain scalar is tried
        # against the implicit resolvers of its first character, anything else
        # gets its kind's default tag.
        if kind is ScalarNode:
            if implicit[0]:
                resolvers = self.yaml_implicit_resolvers.get(value[:1])
                if resolvers:
                    for tag, regexp in resolvers:
                        if regexp.match(value):
                            return str(tag)
            return _STR_TAG
        return _SEQ_TAG if kind is SequenceNode else _MAP_TAG


def _tag_loader_applies() -> bool:
    """Whether ``_TagLoader`` resolves exactly as the safe loader: no path or catch-all resolver registered."""
    return (not _TagLoader.yaml_path_resolvers and None not in _TagLoader.yaml_implicit_resolvers
            and _TagLoader.DEFAULT_SCALAR_TAG == _STR_TAG and _TagLoader.DEFAULT_SEQUENCE_TAG == _SEQ_TAG
            and _TagLoader.DEFAULT_MAPPING_TAG == _MAP_TAG)


Path = tuple[str | int, ...]

# Deepest nesting of collections accepted (a model needs about 6 levels).
MAX_DEPTH = 200


@dataclass
class SourceMap:
    """
    Positions (1-based line, column) of values in the YAML text, by data path.

    Built from the composed node tree only when a position is first asked for:
    a valid model never needs one, so loading it pays for no index of marks.
    """

    source: str
    root: Node | None = None
    # End line (1-based, exclusive) of each top-level key's block, for text surgery.
    top_level_spans: dict[str, tuple[int, int]] = field(default_factory=dict)
    _marks: dict[Path, tuple[int, int]] | None = field(default=None, repr=False)
    _key_marks: dict[Path, tuple[int, int]] = field(default_factory=dict, repr=False)

    @property
    def marks(self) -> dict[Path, tuple[int, int]]:
        if self._marks is None:
            self._marks = {}
            if self.root is not None:
                _index_marks(self.root, self._marks, self._key_marks)
        return self._marks

    @property
    def key_marks(self) -> dict[Path, tuple[int, int]]:
        self.marks  # noqa: B018 - builds both indexes
        return self._key_marks

    def find(self, path: Path) -> tuple[int | None, int | None]:
        """Position of ``path`` or of its nearest located ancestor."""
        marks = self.marks
        p = tuple(path)
        while True:
            if p in marks:
                return marks[p]
            if not p:
                return (None, None)
            p = p[:-1]

    def find_key(self, path: Path) -> tuple[int | None, int | None]:
        return self.key_marks.get(tuple(path)) or self.find(path)


def _index_marks(root: Node, marks: dict[Path, tuple[int, int]], key_marks: dict[Path, tuple[int, int]]) -> None:
    """Every value's position by path, as ``_build`` reads the tree (merge keys already flattened)."""
    builder = _ScalarBuilder()
    stack: list[tuple[Node, Path, int]] = [(root, (), 0)]
    while stack:
        node, path, depth = stack.pop()
        marks[path] = _mark(node)
        if depth >= MAX_DEPTH:
            continue
        if isinstance(node, SequenceNode):
            items = node.value
            if items and all(isinstance(i, ScalarNode) for i in items):
                if len(items) <= 64:  # long numeric lists: the list's own position is precise enough
                    for i, item in enumerate(items):
                        marks[(*path, i)] = _mark(item)
                continue
            stack.extend((item, (*path, i), depth + 1) for i, item in enumerate(items))
        elif isinstance(node, MappingNode):
            for key_node, value_node in node.value:
                if not isinstance(key_node, ScalarNode):
                    continue  # a key the loader reported already
                try:
                    key: str | int = _fast_scalar(key_node, builder)
                    hash(key)
                except Exception:
                    continue
                key_marks[(*path, key)] = _mark(key_node)
                stack.append((value_node, (*path, key), depth + 1))


class _ScalarBuilder(SafeConstructor):
    """Turns one resolved scalar node into its Python value (YAML 1.1 safe types)."""


def _mark(node: Node) -> tuple[int, int]:
    return (node.start_mark.line + 1, node.start_mark.column + 1)


def _expanded_size(root: Node, cap: int) -> tuple[int, int]:
    """
    (unique nodes, nodes after alias expansion), stopping once ``cap`` is passed.
    Raises ``LimitExceeded`` for an alias inside its own anchor (``&a [*a]``),
    which would expand forever.
    """
    memo: dict[int, int] = {}
    open_: set[int] = set()  # collections being sized: the path from the root to here
    unique = 0
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        if key in memo and not done:
            continue
        if isinstance(node, ScalarNode):
            memo[key] = 1
            unique += 1
            continue
        children: list[Node]
        if isinstance(node, MappingNode):
            children = [c for pair in node.value for c in pair]
        else:
            children = list(node.value)
        if not done:
            if key in open_:
                line, col = _mark(node)
                raise LimitExceeded(
                    f"the YAML collection anchored at line {line}, column {col} contains an alias to "
                    "itself, which would expand forever; refusing to expand (possible YAML bomb)",
                    limit_name="yaml_alias_expansion",
                )
            open_.add(key)
            stack.append((node, True))
            stack.extend((c, False) for c in children if id(c) not in memo)
            continue
        open_.discard(key)
        size = 1 + sum(memo.get(id(c), 1) for c in children)
        memo[key] = size
        unique += 1
        if size > cap:
            return unique, size
    return unique, memo.get(id(root), 1)


def _check_bomb(root: Node, max_nodes: int) -> None:
    unique, expanded = _expanded_size(root, cap=max_nodes)
    # Aliases that multiply the document (as in "billion laughs") are refused; a
    # document that merely reuses an anchor a few times stays well under this.
    if expanded > max_nodes or expanded > 10 * unique + 10_000:
        raise LimitExceeded(
            f"YAML aliases expand to more than {min(max_nodes, 10 * unique + 10_000)} nodes "
            f"(document has {unique}); refusing to expand (possible YAML bomb)",
            limit_name="yaml_alias_expansion",
        )


def parse_yaml(text: str, source: str = "<string>", *, max_nodes: int = 20_000_000) -> tuple[Any, SourceMap]:
    """
    Parse one YAML document into plain data and a ``SourceMap``.

    Raises ``ModelSyntaxError`` (with line and column) when the text is not YAML
    or nests deeper than ``MAX_DEPTH``, and ``LimitExceeded`` for alias bombs.

    >>> data, sm = parse_yaml("a: 1\\nb: [x, y]\\n")
    >>> data, sm.find(("b",))
    ({'a': 1, 'b': ['x', 'y']}, (2, 4))
    >>> parse_yaml("[" * 100_000)
    Traceback (most recent call last):
    ...
    flowtime.errors.ModelSyntaxError: 1 error in <string>:
      - <string>, line 1, column 201: nesting deeper than 200 levels
    """
    _check_encodable(text, source)
    try:
        if not _composer_bounds_depth():
            _check_depth(text, source, MAX_DEPTH, _Loader)  # an older libyaml would recurse without end
        root = yaml.compose(text, Loader=_TagLoader if _tag_loader_applies() else _Loader)
    except yaml.MarkedYAMLError as exc:
        # libyaml refuses deep nesting with a limit of its own while scanning ahead
        # (PyYAML 6.0.4 does at 1000 levels), before our limit can be checked on
        # the tree: on any YAML error, ask the pure-Python parser (no such limit)
        # whether our limit is passed first, so the message is ours whatever the library does.
        _check_depth_after_error(text, source, MAX_DEPTH)
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        col = mark.column + 1 if mark is not None else None
        msg = " ".join(str(x) for x in (exc.context, exc.problem) if x) or "invalid YAML"
        raise ModelSyntaxError(
            [Problem("", f"invalid YAML: {msg}", line, col, source=source)], source
        ) from None
    except RecursionError:  # the pure-Python composer (no libyaml) on a deep document
        _check_depth_after_error(text, source, MAX_DEPTH)
        raise ModelSyntaxError([Problem("", f"nesting deeper than {MAX_DEPTH} levels", source=source)],
                               source) from None
    except yaml.reader.ReaderError as exc:  # a character YAML does not allow (control characters)
        line, col = _text_position(text, exc.position)
        char = exc.character if isinstance(exc.character, int) else ord(exc.character)
        raise ModelSyntaxError([Problem("", f"invalid YAML: unacceptable character #x{char:04x}: {exc.reason}",
                                        line, col, source=source)], source) from None
    except yaml.YAMLError as exc:
        raise ModelSyntaxError([Problem("", f"invalid YAML: {exc}", source=source)], source) from None
    smap = SourceMap(source, root)
    if root is None:
        return None, smap
    if "&" in text:  # no anchor, no alias: nothing can expand
        _check_bomb(root, max_nodes)
    problems: list[Problem] = []
    builder = _ScalarBuilder()
    try:
        data = _build_plain(root, builder, 0)
    except _NotPlain:  # something to report, or to resolve (merge keys): the long way, with paths
        data = _NotPlain
    try:
        if data is _NotPlain:
            data = _build(root, (), builder, problems, depth=0)
    except _TooDeep as deep:
        line, col = _mark(deep.node)
        raise ModelSyntaxError([Problem("", f"nesting deeper than {MAX_DEPTH} levels", line, col, source=source)],
                               source) from None
    if isinstance(root, MappingNode):
        _record_top_level_spans(root, smap, text)
    if problems:
        raise ModelSyntaxError([dataclasses.replace(p, source=source) for p in problems], source)
    return data, smap


class _TooDeep(Exception):
    def __init__(self, node: Node) -> None:
        self.node = node


@functools.lru_cache(maxsize=1)
def _composer_bounds_depth() -> bool:
    """
    Whether the C composer refuses deep nesting itself (libyaml 0.2.6 does, at
    1000 levels): then composing first is safe, and our limit is checked on the
    tree for free. Older builds recurse on the C stack and need the event pass first.
    """
    if not hasattr(yaml, "CSafeLoader") or _Loader is not yaml.CSafeLoader:
        return True  # the pure-Python composer raises RecursionError, caught above
    try:
        yaml.compose("[" * 5000, Loader=yaml.CSafeLoader)
    except yaml.YAMLError:
        return True
    return False


def _text_position(text: str, offset: int) -> tuple[int, int]:
    """1-based (line, column) of a libyaml byte offset into the UTF-8 form of ``text``."""
    before = text.encode("utf-8")[:offset].decode("utf-8", "ignore")
    return before.count("\n") + 1, len(before) - (before.rfind("\n") + 1) + 1


def _check_encodable(text: str, source: str) -> None:
    """Refuse lone surrogates (possible in a str from JSON ``\\ud800``), which libyaml cannot encode."""
    if text.isascii():
        return
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        before = text[: exc.start]
        line = before.count("\n") + 1
        col = exc.start - (before.rfind("\n") + 1) + 1
        raise ModelSyntaxError(
            [Problem("", f"text is not valid Unicode: lone surrogate U+{ord(text[exc.start]):04X}", line, col,
                     source=source)], source
        ) from None


_OPENERS = (SequenceStartEvent, MappingStartEvent)
_CLOSERS = (SequenceEndEvent, MappingEndEvent)


def _check_depth(text: str, source: str, max_depth: int, loader: Any) -> None:
    """
    Refuse documents nesting collections deeper than ``max_depth``, reading
    the parser's events (it keeps an explicit stack) and stopping at the
    first level too deep, so the cost is one event pass at most.
    """
    # Every collection starts with one of these indicators (a block mapping with
    # its first ':' or '?'), so fewer of them cannot nest deeper: skip the pass.
    if sum(map(text.count, "[{-:?")) <= max_depth:
        return
    depth = 0
    for event in yaml.parse(text, Loader=loader):
        kind = type(event)
        if kind in _OPENERS:
            depth += 1
            if depth > max_depth:
                mark = event.start_mark
                line, col = (mark.line + 1, mark.column + 1) if mark is not None else (None, None)
                raise ModelSyntaxError(
                    [Problem("", f"nesting deeper than {max_depth} levels", line, col, source=source)], source
                )
        elif kind in _CLOSERS:
            depth -= 1


def _check_depth_after_error(text: str, source: str, max_depth: int) -> None:
    """``_check_depth`` with the pure-Python parser; its own syntax errors are left to the caller's."""
    try:
        _check_depth(text, source, max_depth, yaml.SafeLoader)
    except yaml.YAMLError:
        return


_MAX_DEPTH = MAX_DEPTH


def _build(node: Node, path: Path, builder: _ScalarBuilder, problems: list[Problem], depth: int) -> Any:
    if isinstance(node, ScalarNode):
        return _scalar(node, path, builder, problems)
    if depth >= _MAX_DEPTH:  # this collection is the first one level too deep
        raise _TooDeep(node)
    if isinstance(node, SequenceNode):
        items = node.value
        if items and all(isinstance(i, ScalarNode) for i in items):
            return [_scalar(item, (*path, i), builder, problems) for i, item in enumerate(items)]
        return [_build(item, (*path, i), builder, problems, depth + 1) for i, item in enumerate(items)]
    if isinstance(node, MappingNode):
        result: dict[Any, Any] = {}
        try:
            builder.flatten_mapping(node)  # resolves YAML merge keys (<<)
        except yaml.MarkedYAMLError as exc:  # a merge key whose value is not a mapping (or list of them)
            mark = exc.problem_mark or exc.context_mark
            line, col = (mark.line + 1, mark.column + 1) if mark is not None else _mark(node)
            problems.append(Problem(_fmt(path), f"bad merge key: {exc.problem}", line, col))
            return None
        for key_node, value_node in node.value:
            key = _build(key_node, (*path, "<key>"), builder, problems, depth + 1)
            try:
                hash(key)
            except TypeError:
                line, col = _mark(key_node)
                problems.append(Problem(_fmt(path), "mapping keys must be plain scalars", line, col))
                continue
            if key in result:
                line, col = _mark(key_node)
                problems.append(
                    Problem(_fmt((*path, key)), f"duplicate key {key!r} (a key may appear once)", line, col)
                )
            result[key] = _build(value_node, (*path, key), builder, problems, depth + 1)
        return result
    line, col = _mark(node)  # pragma: no cover - yaml has no other node kinds
    problems.append(Problem(_fmt(path), "unsupported YAML node", line, col))
    return None


class _NotPlain(Exception):
    """Raised by ``_build_plain`` for anything ``_build`` might report or treat specially."""


_VALUE_KEY_TAGS = ("tag:yaml.org,2002:merge", "tag:yaml.org,2002:value")


def _build_plain(node: Node, builder: _ScalarBuilder, depth: int) -> Any:
    """
    ``_build`` for a document with nothing to report: no paths kept, strings
    and plain numbers built inline. Raises ``_NotPlain`` at the first thing
    ``_build`` would report (a duplicate key, a bad value, nesting too deep) or
    handle (merge keys), and ``_build`` then does the whole document again.
    """
    cls = node.__class__
    if cls is ScalarNode:
        return _plain_scalar(node, builder)  # type: ignore[arg-type]
    if depth >= _MAX_DEPTH:
        raise _NotPlain
    if cls is SequenceNode:
        out = []
        for item in node.value:
            if item.__class__ is ScalarNode:
                out.append(item.value if item.tag == _STR_TAG else _plain_scalar(item, builder))
            else:
                out.append(_build_plain(item, builder, depth + 1))
        return out
    if cls is not MappingNode:
        raise _NotPlain
    result: dict[Any, Any] = {}
    for key_node, value_node in node.value:
        if key_node.__class__ is not ScalarNode:
            raise _NotPlain
        tag = key_node.tag
        if tag == _STR_TAG:
            key = key_node.value
        elif tag in _VALUE_KEY_TAGS:
            raise _NotPlain
        else:
            key = _plain_scalar(key_node, builder)
        if key in result:
            raise _NotPlain
        if value_node.__class__ is ScalarNode and value_node.tag == _STR_TAG:
            result[key] = value_node.value
        else:
            result[key] = _build_plain(value_node, builder, depth + 1)
    return result


def _plain_scalar(node: ScalarNode, builder: _ScalarBuilder) -> Any:
    """``_scalar`` for a value with nothing to report (decimal ints and plain floats without a constructor call)."""
    tag = node.tag
    value = node.value
    if tag == _STR_TAG:
        return value
    if tag == _FLOAT_TAG and "_" not in value and ":" not in value:
        try:
            return float(value)  # SafeConstructor: sign * float(rest), the same float
        except ValueError:  # .inf, .nan
            pass
    elif tag == _INT_TAG and value.isdecimal() and len(value) < 300 and (value[0] != "0" or value == "0"):
        return int(value)
    try:
        out = _fast_scalar(node, builder)
        hash(out)
    except Exception:
        raise _NotPlain from None
    if isinstance(out, GeneratorType):
        raise _NotPlain
    if isinstance(out, int) and not isinstance(out, bool) and abs(out) >= _MAX_INT:
        raise _NotPlain
    return out


def _bad_value(value: str, exc: Exception) -> str:
    """The message for a scalar PyYAML resolved to a type but could not build."""
    if "integer string conversion" in str(exc):
        return f"number with {len(value)} digits is too long (at most {sys.get_int_max_str_digits()})"
    shown = value if len(value) <= 40 else value[:37] + "..."
    return f"bad value {shown!r}: {exc}"


_MAX_INT = 10**300  # beyond this an integer is not a model number (and may not even print)



def _fast_scalar(node: ScalarNode, builder: _ScalarBuilder) -> Any:
    """A scalar's value through its tag's constructor directly (``construct_object``'s
    bookkeeping for recursive collections is of no use for a scalar)."""
    if node.tag == _STR_TAG:
        return node.value
    ctor = builder.yaml_constructors.get(node.tag)
    if ctor is None:
        return builder.construct_object(node)
    return ctor(builder, node)


def _scalar(node: ScalarNode, path: Path, builder: _ScalarBuilder, problems: list[Problem]) -> Any:
    """One scalar's value, or None plus a located problem. PyYAML's constructors fail
    in many ways on odd tagged scalars (`!!int ''`, `!!bool x`, `2001-02-29`), so
    anything they raise is a problem with the scalar, never a crash."""
    try:
        value = _fast_scalar(node, builder)
        if isinstance(value, GeneratorType):  # a collection's tag (`!!set x`): its constructor needs a collection
            raise TypeError(node.tag)
    except Exception as exc:
        line, col = _mark(node)
        kind = str(node.tag).rsplit(":", 1)[-1]
        detail = _bad_value(node.value, exc) if isinstance(exc, ValueError | OverflowError) else (
            f"cannot read {node.value[:40]!r} as {kind}")
        problems.append(Problem(_fmt(path), detail, line, col))
        return None
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= _MAX_INT:
        line, col = _mark(node)
        problems.append(Problem(_fmt(path), "integer too large (more than 300 digits)", line, col))
        return None
    return value


def _record_top_level_spans(root: MappingNode, smap: SourceMap, text: str) -> None:
    # Only block-style documents (keys in column 0) support line-level surgery.
    for key_node, value_node in root.value:
        if not isinstance(key_node, ScalarNode) or key_node.start_mark.column != 0:
            continue
        start = key_node.start_mark.line
        end_mark = value_node.end_mark
        end = end_mark.line if end_mark.column == 0 else end_mark.line + 1
        smap.top_level_spans[str(key_node.value)] = (start, max(end, start + 1))


def remove_top_level_key(text: str, key: str, smap: SourceMap) -> str | None:
    """
    ``text`` without the block of top-level ``key`` (and comment lines directly
    above it), keeping every other byte; ``None`` when that cannot be done safely
    (flow-style document), in which case callers re-serialise.
    """
    span = smap.top_level_spans.get(key)
    if span is None:
        return None
    lines = text.splitlines(keepends=True)
    start, end = span
    while start > 0 and lines[start - 1].lstrip().startswith("#"):
        start -= 1
    # Keep the comment lines that belong to the next key, drop trailing blank lines.
    while end > start and end - 1 < len(lines) and lines[end - 1].lstrip().startswith("#"):
        end -= 1
    kept = lines[:start] + lines[end:]
    # Collapse the blank line pair left where the block was.
    if start > 0 and start < len(kept) and not kept[start - 1].strip() and not kept[start].strip():
        del kept[start]
    return "".join(kept)


def _fmt(path: Path) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


format_path = _fmt


def iter_paths(smap: SourceMap) -> Iterator[Path]:
    return iter(smap.marks)
