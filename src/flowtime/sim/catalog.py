"""
The template catalog: the built-in library plus an optional templates directory.

Templates are read and validated once, when the catalog is built. A template
in the directory replaces a built-in one with the same id. A directory
template that fails validation is kept aside in ``broken`` (its id then
answers with the validation error instead of "not found") so one bad file
does not hide the others.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import yaml

from flowtime.errors import Problem, TemplateError, TemplateNotFound
from flowtime.expr.functions import suggest
from flowtime.sim.render import check_template
from flowtime.sim.template import TEMPLATE_ID, Template, TemplateValidationError, parse_template

TEMPLATE_SUFFIXES = (".yaml", ".yml")


@dataclass
class Catalog:
    templates: dict[str, Template] = field(default_factory=dict)
    broken: dict[str, TemplateError] = field(default_factory=dict)
    templates_dir: Path | None = None

    @classmethod
    def load(cls, templates_dir: Path | None = None, *, builtin: bool = True,
             max_array_length: int | None = None) -> Catalog:
        """
        Built-ins, then the directory's templates (same id -> the directory wins).

        Raises ``TemplateError`` when ``templates_dir`` is given but missing.
        """
        catalog = cls(templates_dir=templates_dir)
        if builtin:
            catalog.templates.update((t.id, t) for t in builtin_templates())
        if templates_dir is not None:
            catalog._load_dir(templates_dir, max_array_length)
        return catalog

    def _load_dir(self, directory: Path, max_array_length: int | None) -> None:
        if not directory.is_dir():
            raise TemplateError(f"templates directory not found: {directory}")
        seen: dict[str, Path] = {}
        for path in sorted(directory.iterdir()):
            if path.suffix not in TEMPLATE_SUFFIXES or not path.is_file():
                continue
            try:
                template = load_template_file(path, max_array_length=max_array_length)
            except TemplateError as exc:
                self.broken[_declared_id(path)] = exc
                continue
            if template.id in seen:
                self.broken[template.id] = TemplateValidationError(
                    [Problem("metadata.id", f"template id '{template.id}' is also used by "
                             f"{seen[template.id].name}", source=str(path))], str(path))
                self.templates.pop(template.id, None)
                continue
            seen[template.id] = path
            self.templates[template.id] = template

    def get(self, template_id: str) -> Template:
        """The template, or ``TemplateNotFound`` naming it (with a close match)."""
        if template_id in self.templates:
            return self.templates[template_id]
        if template_id in self.broken:
            raise self.broken[template_id]
        valid = TEMPLATE_ID.match(template_id) is not None
        shown = f"'{template_id}'" if valid else repr(template_id[:80])
        hint = suggest(template_id, sorted(self.templates)) if valid else ""
        raise TemplateNotFound(f"template {shown} not found{hint}; "
                               f"{len(self.templates)} templates are available")

    def select(self, search: str | None = None, tag: str | None = None) -> list[Template]:
        """Templates sorted by id, filtered by a text search and/or a tag (case-insensitive)."""
        out = sorted(self.templates.values(), key=lambda t: t.id)
        if tag:
            wanted = tag.lower()
            out = [t for t in out if wanted in (x.lower() for x in t.tags)]
        if search:
            needle = search.lower()
            out = [t for t in out if needle in " ".join((t.id, t.title, t.description, *t.tags)).lower()]
        return out

    def __len__(self) -> int:
        return len(self.templates)


def load_template_file(path: Path, *, origin: str | None = None,
                       max_array_length: int | None = None) -> Template:
    """Read, parse and check one template file."""
    text = path.read_text(encoding="utf-8-sig")
    template = parse_template(text, str(path), fallback_id=path.stem, origin=origin or str(path))
    check_template(template, max_array_length=max_array_length)
    return template


@functools.cache
def builtin_templates() -> tuple[Template, ...]:
    """The library shipped in ``flowtime/sim/library`` (read once per process)."""
    out = []
    library = resources.files("flowtime.sim") / "library"
    for entry in sorted(library.iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(TEMPLATE_SUFFIXES):
            continue
        text = entry.read_text(encoding="utf-8")
        template = parse_template(text, f"library/{entry.name}", origin="builtin")
        check_template(template)
        out.append(template)
    return tuple(out)


def _declared_id(path: Path) -> str:
    """The id a broken template file claims, else its file name."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8-sig"))
        tid = data["metadata"]["id"]
    except Exception:  # any failure means the file name is the best we know
        return path.stem
    return tid if isinstance(tid, str) and TEMPLATE_ID.match(tid) else path.stem
