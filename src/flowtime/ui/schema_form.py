"""
An experiment form generated from the experiment spec's JSON schema (the Engine's, over HTTP).

``spec_fields(schema, kind, rows)`` walks the schema of one kind into flat
fields whose names ARE spec paths (``parameters[1].range.low``), so the
Engine's located problems land on the field they name without a table of ours;
``read_spec(fields, form)`` turns the posted texts back into the spec's JSON
(blank fields left out, so the Engine's defaults apply: they are the
placeholders) and ``locate(problems, fields, renames)`` puts each problem at its
field. What the walker knows:

* objects become their properties; ``anyOf [X, null]`` an optional X;
* a discriminated union (``distribution``) a ``.kind`` select plus every
  variant's fields, each marked with the variants it belongs to;
* arrays of objects (parameters, metrics, constraints) ``rows`` numbered rows;
  arrays of numbers or strings one comma-separated text; an int-or-string a text.

Empty rows are dropped before posting and the later rows renumbered; ``renames``
maps the posted row back to the form's, so a problem still lands on its row.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from flowtime.ui.forms import fmt_number

SKIPPED = frozenset({"kind"})  # the kind is the page's choice, not a field
ROW_DEFAULT = 1
NULLS = frozenset({"", "null", "none", "nan", "-"})


@dataclass(frozen=True)
class SpecField:
    name: str  # the spec path
    label: str
    type: str  # number integer boolean text enum numbers numbers-or-null texts int-or-text
    choices: tuple[str, ...] = ()
    default: str = ""  # the schema's default, shown as the placeholder
    required: bool = False
    help: str = ""
    selector: str | None = None  # a variant field: shown when this select ...
    variants: tuple[str, ...] = ()  # ... holds one of these

    @property
    def group(self) -> str:
        """The form section: ``parameters[0]``, ``metrics[1]``, ``settings`` or ``general``."""
        head = re.match(r"^(\w+(\[\d+\])?)", self.name)
        top = head.group(1) if head else self.name
        return top if "[" in top or top == "settings" else "general"

    @property
    def leaf(self) -> str:
        return self.name[len(self.group) + 1:] if self.name.startswith(self.group + ".") else self.name


@dataclass
class _Walk:
    defs: Mapping[str, Any]
    rows: Mapping[str, int]
    out: list[SpecField] = field(default_factory=list)

    def ref(self, node: Mapping[str, Any]) -> Mapping[str, Any]:
        while "$ref" in node:
            node = self.defs[str(node["$ref"]).rsplit("/", 1)[-1]]
        return node

    def add(self, f: SpecField) -> None:
        for i, old in enumerate(self.out):
            if old.name == f.name:  # the same field in two variants: one input, shown for both
                self.out[i] = replace(old, variants=(*old.variants, *f.variants))
                return
        self.out.append(f)

    def walk(self, node: Mapping[str, Any], path: str, *, required: bool, label: str,
             selector: str | None = None, variants: tuple[str, ...] = ()) -> None:
        node = self.ref(node)
        options = [self.ref(o) for o in node.get("anyOf", ()) if o.get("type") != "null"]
        nullable = len(options) < len(node.get("anyOf", ()))
        if len(options) == 1 and "discriminator" not in node:
            inner = {**options[0], **{k: node[k] for k in ("default", "title", "description") if k in node}}
            self.walk(inner, path, required=required and not nullable, label=label, selector=selector,
                      variants=variants)
            return
        base = SpecField(path, label, "text", default=_text(node.get("default")), required=required,
                         help=str(node.get("description") or "").split("\n")[0], selector=selector, variants=variants)
        union = node if "discriminator" in node else next((o for o in options if "discriminator" in o), None)
        if union is not None:
            key = union["discriminator"]["propertyName"]
            mapping: Mapping[str, str] = union["discriminator"]["mapping"]
            sel = f"{path}.{key}"
            self.add(replace(base, name=sel, label=f"{label} {key}", type="enum", choices=tuple(mapping), default="",
                             required=False))
            for name, target in mapping.items():
                self.walk({"$ref": target}, path, required=False, label=label, selector=sel, variants=(name,))
            return
        types = {o.get("type") for o in options}
        if types == {"integer", "string"}:
            self.add(replace(base, type="int-or-text"))
        elif node.get("type") == "object" or "properties" in node:
            needed = set(node.get("required", ()))
            for prop, sub in node.get("properties", {}).items():
                if prop in SKIPPED and (sub.get("const") is not None or not path):
                    continue
                self.walk(sub, f"{path}.{prop}" if path else prop, required=prop in needed, label=prop,
                          selector=selector, variants=variants)
        elif node.get("type") == "array":
            items = self.ref(node.get("items", {}))
            if items.get("type") == "object" or "properties" in items:
                for i in range(self.rows.get(path, ROW_DEFAULT)):
                    self.walk(items, f"{path}[{i}]", required=False, label=label, selector=selector,
                              variants=variants)
            else:
                item_types = {self.ref(o).get("type") for o in items.get("anyOf", [items])}
                kind = ("texts" if "string" in item_types else
                        "numbers-or-null" if "null" in item_types else "numbers")
                self.add(replace(base, type=kind))
        elif "enum" in node:
            self.add(replace(base, type="enum", choices=tuple(str(v) for v in node["enum"])))
        elif node.get("type") in ("number", "integer", "boolean", "string"):
            self.add(replace(base, type="text" if node["type"] == "string" else str(node["type"])))


def kind_schema(schema: Mapping[str, Any], kind: str) -> Mapping[str, Any] | None:
    """The object schema of one kind from the spec's schema (its discriminator mapping)."""
    mapping = (schema.get("discriminator") or {}).get("mapping") or {}
    ref = mapping.get(kind)
    return {"$ref": ref} if ref else None


def kinds_of(schema: Mapping[str, Any]) -> tuple[str, ...]:
    return tuple((schema.get("discriminator") or {}).get("mapping") or {})


def spec_fields(schema: Mapping[str, Any], defs: Mapping[str, Any], kind: str,
                rows: Mapping[str, int]) -> list[SpecField]:
    """The fields of ``kind``'s form; ``defs`` resolve the schema's ``$ref``s by their last segment."""
    root = kind_schema(schema, kind)
    if root is None:
        return []
    w = _Walk(defs, rows)
    w.walk(root, "", required=False, label="")
    return w.out


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ", ".join(_text(v) for v in value)
    return fmt_number(value)


def _number(text: str, whole: bool) -> float | int:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError
    if whole:
        if value != int(value):
            raise ValueError
        return int(value)
    return int(value) if value.is_integer() and "." not in text and "e" not in text.lower() else value


def _split(text: str) -> list[str]:
    return [p.strip() for p in re.split(r"[,;\s]+", text.strip()) if p.strip()] if text.strip() else []


def parse_text(f: SpecField, text: str) -> Any:
    """The JSON value of one field's text; ``ValueError`` with the message shown at the field."""
    t = text.strip()
    if f.type in ("number", "integer"):
        try:
            return _number(t, f.type == "integer")
        except ValueError:
            raise ValueError(f"expects {'a whole number' if f.type == 'integer' else 'a number'}, got '{t}'") from None
    if f.type == "boolean":
        if t.lower() not in ("true", "false"):
            raise ValueError(f"expects true or false, got '{t}'")
        return t.lower() == "true"
    if f.type == "enum" and t not in f.choices:
        raise ValueError(f"expects one of {', '.join(f.choices)}, got '{t}'")
    if f.type == "int-or-text":
        return int(t) if re.fullmatch(r"-?\d+", t) else t
    if f.type in ("numbers", "numbers-or-null"):
        out: list[float | int | None] = []
        for part in re.split(r"[,;]\s*|\s+", t):
            if f.type == "numbers-or-null" and part.lower() in NULLS:
                out.append(None)
                continue
            try:
                out.append(_number(part, False))
            except ValueError:
                raise ValueError(f"expects numbers separated by commas; '{part}' is not a number") from None
        return out
    if f.type == "texts":
        return _split(t)
    return t


def _set(out: dict[str, Any], path: str, value: Any) -> None:
    parts = re.findall(r"[^.\[\]]+|\[\d+\]", path)
    here: Any = out
    for part, nxt in zip(parts, [*parts[1:], None], strict=True):
        key: str | int = int(part[1:-1]) if part.startswith("[") else part
        if nxt is None:
            here[key] = value
            return
        child: Any = [] if nxt.startswith("[") else {}
        if isinstance(here, list):
            assert isinstance(key, int)
            while len(here) <= key:
                here.append(None)
            if here[key] is None:
                here[key] = child
            here = here[key]
        else:
            here = here.setdefault(key, child)


def _compact(value: Any, path: str, renames: dict[str, str]) -> Any:
    """Rows left empty dropped, the rest renumbered (``renames``: posted path -> form path)."""
    if isinstance(value, dict):
        return {k: _compact(v, f"{path}.{k}" if path else k, renames) for k, v in value.items()}
    if isinstance(value, list) and any(isinstance(v, dict) or v is None for v in value):
        kept = [(i, v) for i, v in enumerate(value) if v]
        for new, (old, _) in enumerate(kept):
            if new != old:
                renames[f"{path}[{new}]"] = f"{path}[{old}]"
        return [_compact(v, f"{path}[{i}]", renames) for i, v in kept]
    return value


def read_spec(fields: Iterable[SpecField], texts: Mapping[str, str | list[str]],
              kind: str) -> tuple[dict[str, Any], dict[str, str], dict[str, str]]:
    """(spec, per-field errors, renames) from the posted texts (a list for a multi-select)."""
    spec: dict[str, Any] = {}
    errors: dict[str, str] = {}
    fields = list(fields)
    chosen = {f.name: texts.get(f.name) for f in fields if f.type == "enum"}
    for f in fields:
        if f.selector is not None and chosen.get(f.selector) not in f.variants:
            continue
        raw = texts.get(f.name)
        text = ", ".join(raw) if isinstance(raw, list) else (raw or "")
        if not text.strip():
            continue
        try:
            _set(spec, f.name, parse_text(f, text))
        except ValueError as exc:
            errors[f.name] = str(exc)
    renames: dict[str, str] = {}
    spec = _compact(spec, "", renames)
    return {"kind": kind, **spec}, errors, renames


def _back(path: str, renames: Mapping[str, str]) -> str:
    for posted, shown in renames.items():
        if path == posted or path.startswith((posted + ".", posted + "[")):
            return shown + path[len(posted):]
    return path


def locate(problems: Iterable[Any], fields: Iterable[SpecField],
           renames: Mapping[str, str]) -> tuple[dict[str, str], list[str]]:
    """
    Each problem (``path``, ``message``) at the field its path names, else at the first field under it, else
    at the first field of its nearest enclosing path; what has no field (``model``, ``body``) is general.
    """
    names = [f.name for f in fields]
    per_field: dict[str, str] = {}
    general: list[str] = []
    for prob in problems:
        path = _back(str(getattr(prob, "path", "") or ""), renames)
        message = str(getattr(prob, "message", "") or "")
        where = None
        probe = path
        while probe and where is None:
            where = next((n for n in names if n == probe or n.startswith((probe + ".", probe + "["))), None)
            probe = re.sub(r"(\.[^.\[\]]+|\[\d+\])$", "", probe) if re.search(r"[.\[]", probe) else ""
        if where is None:
            general.append(f"{path}: {message}" if path else message)
        else:
            per_field[where] = f"{per_field[where]} {message}" if where in per_field else message
    return per_field, general
