"""
``@record``: a frozen dataclass whose methods are shared, not generated per class.

``dataclasses.dataclass(frozen=True)`` writes and compiles ``__init__``,
``__repr__``, ``__eq__``, ``__hash__``, ``__setattr__`` and ``__delattr__`` for
every class, about 1 ms each time a module is imported; forty such classes were
a third of the command line's start-up (0013). A record compiles only its
``__init__``; the other methods are the generic ones below, driven by the
dataclass fields. Behaviour is that of a frozen dataclass: fields compared and
hashed in order (``compare=False`` fields left out), assignment after
``__init__`` raises ``dataclasses.FrozenInstanceError``, ``dataclasses.replace``
and ``fields`` work.

>>> @record
... class Point:
...     x: int
...     y: int = 0
>>> p = Point(1)
>>> p, p == Point(1, 0), hash(p) == hash(Point(1)), dataclasses.replace(p, y=2)
(Point(x=1, y=0), True, True, Point(x=1, y=2))
>>> p.x = 5
Traceback (most recent call last):
...
dataclasses.FrozenInstanceError: cannot assign to field 'x'
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, TypeVar, dataclass_transform, overload

T = TypeVar("T")


def _setattr(self: Any, name: str, value: Any) -> None:
    # Each field is set once, by __init__; anything after that is refused.
    if name in self.__dict__ or name not in type(self).__dataclass_fields__:
        raise dataclasses.FrozenInstanceError(f"cannot assign to field {name!r}")
    object.__setattr__(self, name, value)


def _delattr(self: Any, name: str) -> None:
    raise dataclasses.FrozenInstanceError(f"cannot delete field {name!r}")


def _key(self: Any) -> tuple[Any, ...]:
    return tuple(getattr(self, n) for n in type(self).__record_compare__)


def _eq(self: Any, other: Any) -> Any:
    if other.__class__ is not self.__class__:
        return NotImplemented
    return _key(self) == _key(other)


def _hash(self: Any) -> int:
    return hash(_key(self))


_DERIVED = "__record_derived__"


def derived(obj: Any) -> dict[Any, Any]:
    """
    A cache of what was computed from a record (its graph, its plans), kept on
    the record itself: it lives and dies with the record (a cache keyed by id
    would keep the record alive through the values it holds), and is never
    compared, hashed, copied or pickled.
    """
    d: dict[Any, Any] = obj.__dict__.setdefault(_DERIVED, {})
    return d


def _getstate(self: Any) -> dict[str, Any]:
    return {k: v for k, v in self.__dict__.items() if k != _DERIVED}


def _repr(self: Any) -> str:
    parts = ", ".join(f"{n}={getattr(self, n)!r}" for n in type(self).__record_repr__)
    return f"{type(self).__qualname__}({parts})"


def _init_source(cls: type[Any], fields: tuple[dataclasses.Field[Any], ...]) -> tuple[str, dict[str, Any]]:
    """``__init__`` storing each field with ``object.__setattr__`` (as a frozen dataclass's does)."""
    env: dict[str, Any] = {"_set": object.__setattr__, "_MISSING": dataclasses.MISSING}
    params: list[str] = []
    kw: list[str] = []
    body: list[str] = []
    for f in fields:
        if not f.init:
            if f.default_factory is not dataclasses.MISSING:
                env[f"_factory_{f.name}"] = f.default_factory
                body.append(f"    _set(self, {f.name!r}, _factory_{f.name}())")
            elif f.default is not dataclasses.MISSING:
                env[f"_default_{f.name}"] = f.default
                body.append(f"    _set(self, {f.name!r}, _default_{f.name})")
            continue
        if f.default_factory is not dataclasses.MISSING:
            env[f"_factory_{f.name}"] = f.default_factory
            param = f"{f.name}=_MISSING"
            body.append(f"    _set(self, {f.name!r}, _factory_{f.name}() if {f.name} is _MISSING else {f.name})")
        else:
            if f.default is not dataclasses.MISSING:
                env[f"_default_{f.name}"] = f.default
                param = f"{f.name}=_default_{f.name}"
            else:
                param = f.name
            body.append(f"    _set(self, {f.name!r}, {f.name})")
        (kw if f.kw_only else params).append(param)
    if hasattr(cls, "__post_init__"):
        body.append("    self.__post_init__()")
    signature = ", ".join(["self", *params, *(["*", *kw] if kw else [])])
    return f"def __init__({signature}):\n" + "\n".join(body or ["    pass"]), env


def _make(cls: type[T], kw_only: bool) -> type[T]:
    own = cls.__dict__
    cls = dataclasses.dataclass(cls, init=False, repr=False, eq=False, kw_only=kw_only)
    fields = dataclasses.fields(cls)  # type: ignore[arg-type]
    source, env = _init_source(cls, fields)
    exec(source, env)  # one small function per class: the only code compiled for a record
    init = env["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    cls.__init__ = init  # type: ignore[method-assign]
    cls.__record_compare__ = tuple(f.name for f in fields if f.compare)  # type: ignore[attr-defined]
    cls.__record_repr__ = tuple(f.name for f in fields if f.repr)  # type: ignore[attr-defined]
    cls.__setattr__ = _setattr  # type: ignore[method-assign]
    cls.__delattr__ = _delattr  # type: ignore[method-assign]
    if "__getstate__" not in own:
        cls.__getstate__ = _getstate  # type: ignore[method-assign]
    if "__repr__" not in own:
        cls.__repr__ = _repr  # type: ignore[method-assign]
    if "__eq__" not in own:
        cls.__eq__ = _eq  # type: ignore[method-assign]
    if "__hash__" not in own:
        cls.__hash__ = _hash  # type: ignore[method-assign]
    return cls


@overload
def record(cls: type[T], /) -> type[T]: ...
@overload
def record(*, kw_only: bool = False) -> Callable[[type[T]], type[T]]: ...


@dataclass_transform(frozen_default=True, field_specifiers=(dataclasses.field,))
def record(cls: type[T] | None = None, /, *, kw_only: bool = False) -> Any:
    """Decorate a class as a frozen record (``@record`` or ``@record(kw_only=True)``)."""
    if cls is None:
        return lambda c: _make(c, kw_only)
    return _make(cls, kw_only)
