"""
What the fuzz tests assert about one input, and how long they wait for it.

``outcome(text)`` runs model text through load -> compile -> evaluate and
returns the ``Results`` or the ``FlowTimeError`` it raised, after checking that
the error says where; any other exception propagates and fails the test.
``time_limit`` turns a hang into a test failure instead of a stuck run.
"""

from __future__ import annotations

import contextlib
import signal
import traceback
from collections.abc import Callable, Iterator
from typing import Any

from hypothesis import HealthCheck, event, settings

from flowtime.engine import Results, compile_model, evaluate
from flowtime.errors import (
    EvaluationError,
    ExpressionError,
    FlowTimeError,
    LimitExceeded,
    ModelSyntaxError,
    ModelValidationError,
    ParameterError,
)
from flowtime.model.limits import Limits
from flowtime.model.load import load_model

# Small grids keep each case in the millisecond range; everything else stays at
# its default so the defaults are what gets fuzzed.
FUZZ_LIMITS = Limits(max_bins=5000)
CASE_SECONDS = 10.0

# Example counts below are written for the ``ci`` profile (max_examples=200);
# the ``fast`` profile runs a quarter of them.
_SCALE = min(1.0, settings().max_examples / 200)


def fuzz_settings(examples: int) -> settings:
    """``settings`` for a fuzz test that runs ``examples`` cases in the CI profile."""
    return settings(
        max_examples=max(10, int(examples * _SCALE)),
        deadline=None,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.filter_too_much,
            HealthCheck.large_base_example,
        ],
    )


class _Hang(BaseException):
    """Raised by the alarm; a BaseException so no ``except Exception`` in the core swallows it."""


@contextlib.contextmanager
def time_limit(seconds: float = CASE_SECONDS) -> Iterator[None]:
    """Fail with AssertionError when the body runs longer than ``seconds`` (POSIX main thread)."""
    if not hasattr(signal, "setitimer"):  # pragma: no cover - Windows
        yield
        return

    def on_alarm(signum: int, frame: Any) -> None:
        raise _Hang

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    except _Hang:
        raise AssertionError(f"no result and no error within {seconds:g} s (a hang)") from None
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def assert_located(exc: FlowTimeError) -> None:
    """A core error must say where: a line or a path per problem, a column, a node or a limit."""
    if isinstance(exc, ModelSyntaxError | ModelValidationError | ParameterError) or exc.problems:
        assert exc.problems, f"{type(exc).__name__} without problems: {exc}"
        for p in exc.problems:
            whole_document = p.message.startswith("model is empty")  # nothing to point at
            assert p.line is not None or p.path or whole_document, f"problem with neither line nor path: {p!r}"
    elif isinstance(exc, ExpressionError):
        assert 1 <= exc.column <= len(exc.expression) + 1, f"column {exc.column} outside {exc.expression!r}"
    elif isinstance(exc, EvaluationError):
        assert exc.node_id, f"evaluation error without a node: {exc}"
    elif isinstance(exc, LimitExceeded):
        assert exc.limit_name, f"limit error without the limit's name: {exc}"
    else:
        raise AssertionError(f"unexpected error type from the core: {type(exc).__name__}: {exc}")
    str(exc)  # rendering the message must not fail either


# Open bugs found by fuzzing, each pinned by an xfail(strict=True) test in
# test_fuzz_core.py. Inputs that hit one are counted (``event``) and let pass so
# the properties keep hunting for new bugs; delete the entry when the bug is
# fixed (its xfail test then fails and says so). Fixed ones have regression
# tests there instead (recursive aliases, lone surrogates, 5,000-digit numbers,
# merge keys, control characters, ...).
KNOWN_BUGS: dict[str, Callable[[BaseException], bool]] = {}


def _raised_in(exc: BaseException, function: str) -> bool:
    return any(frame.name == function for frame in traceback.extract_tb(exc.__traceback__))


def known_bug(exc: BaseException) -> str | None:
    for name, matches in KNOWN_BUGS.items():
        if matches(exc):
            return name
    return None


def checked(run: Callable[[], Any]) -> Any:
    """
    ``run()``'s value or the FlowTimeError it raised (checked for a location),
    within the time limit. Known bugs give ``None`` and an ``event``.
    """
    try:
        with time_limit():
            out = run()
        if isinstance(out, Results):
            event("result")
        return out
    except FlowTimeError as exc:
        bug = known_bug(exc)
        if bug:
            event(f"known bug: {bug}")
            return None
        assert_located(exc)
        event(f"error: {type(exc).__name__}")
        return exc
    except AssertionError:
        raise
    except Exception as exc:
        bug = known_bug(exc)
        if bug is None:
            raise
        event(f"known bug: {bug}")
        return None


def run_model(text: str, limits: Limits = FUZZ_LIMITS) -> Results:
    loaded = load_model(text, "fuzz.yaml", limits=limits)
    results = evaluate(compile_model(loaded.model))
    bins = loaded.model.grid.bins
    assert all(len(s) == bins for s in results.series.values()), "a series of the wrong length"
    return results


def outcome(text: str, limits: Limits = FUZZ_LIMITS) -> Results | FlowTimeError | None:
    """Results, a located FlowTimeError, or None for a known bug; anything else fails."""
    out: Results | FlowTimeError | None = checked(lambda: run_model(text, limits))
    return out
