"""
Hypothesis strategies for broken inputs, shared by the fuzz tests: expression
tokens and odd characters, junk values for any place in a model, YAML syntax
pieces, and text edits.
"""

from __future__ import annotations

from hypothesis import strategies as st

TOKENS = (
    "a", "b", "p", "x", "y", "zz", "SHIFT", "shift", "MIN", "Max", "CLAMP", "ABS", "SQRT", "POW", "EXP", "LOG",
    "FLOOR", "CEIL", "ROUND", "MOD", "IF", "FOO", "(", ")", ",", "+", "-", "*", "/", "<", "<=", ">", ">=", "==",
    "!=", "=", "!", "0", "1", "2", ".5", "1.", "1e3", "1e-999", "1e999", "9" * 25, "0.1", " ", "\t", "\n",
)
ODD_CHARS = (
    "é", "ß", "Ω", "ａ", "١", "²", "\u0301", "\u200b", "\u2028", "\u00a0", "😀", "\x00", "\x7f", "\ud800", "\x85",
    "\ufeff", "İ", "ﬁ", "$", "{", "}", "[", "]", "@", "#", "'", '"', "\\", ":", ";", "%", "^", "&", "|", "~", "`",
)
EXPR_CHARS = tuple("0123456789.eE+-*/<>=!(), \tabxyzpSHIFTMINACLROUDPWGQ_")

HASHABLE_JUNK = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**6), 10**6),
    st.floats(),  # NaN and infinities included
    st.text(max_size=8),
    st.sampled_from(["const", "expr", "pmf", "queue", "Const", "EXPR", "", "hours", "Hours", "fortnights", "*", "q*",
                     "a", "out", "SHIFT(a, 1)", "SHIFT(q, -1)", "${x}", "1e999", "-1", ".nan", "id", "kind",
                     "values", "expr", "pmf", "bins", "binSize", "binUnit", "binMinutes", "expression", "../x",
                     "out.csv", "a\n", "q_"]),
    st.sampled_from([0, -1, 1, 2, 10**6, 10**6 + 1, 10**30, -(10**30), 2**63, 2**64, -(2**63) - 1, 10**400,
                     1e308, 1.7976931348623157e308, 5e-324, -0.0]),
)
JUNK = st.one_of(
    HASHABLE_JUNK,
    st.binary(max_size=6),
    st.dates(),
    st.lists(HASHABLE_JUNK, max_size=4),
    st.dictionaries(st.text(max_size=4), HASHABLE_JUNK, max_size=3),
    st.just([[[[[[[[1.0]]]]]]]]),
)

YAML_PIECES = (
    "&a ", "*a", "<<: *a\n", "<<: 1", "<<: [1]", "!!python/object:os.system ", "!!python/name:os.system", "!!binary ",
    "!!float ", "!!int ", "!!str ", "!!set ", "!!omap ", "!!map ", "!!seq ", "!foo ", "{", "}", "[", "]", ": ", ":",
    "- ", "? ", "|\n", ">-\n", "---\n", "...\n", "%YAML 1.1\n", "%TAG ! tag:x,2000:\n", "#", "\t", "\n", "  ", "'",
    '"', "\\", "~", "null", ".nan", ".inf", "-.inf", "1e400", "1.0e+400", "9" * 30, "0x1F", "0o17", "0b11", "1_000",
    "1:30", "yes", "No", "2001-01-01", "2001-12-14t21:59:43.10-05:00", "\x00", "\x07", "\ufeff", "\ud800", "é",
    "\u2028", "\r", "\r\n", ",", "-", "1", "0", "9" * 5000, "0x" + "F" * 4000, "kind: queue", "kind: expr",
    "expr: '((('", "id: a", "bins: 0",
)


@st.composite
def mutated(draw: st.DrawFn, base: st.SearchStrategy[str], pieces: tuple[str, ...]) -> str:
    """``base`` text with 1-4 edits: delete a slice, insert a piece, replace or duplicate a slice."""
    text = draw(base)
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, len(text)))
        j = draw(st.integers(i, min(len(text), i + 8)))
        op = draw(st.sampled_from(["delete", "insert", "replace", "duplicate"]))
        piece = draw(st.sampled_from(pieces))
        if op == "delete":
            text = text[:i] + text[j:]
        elif op == "insert":
            text = text[:i] + piece + text[i:]
        elif op == "replace":
            text = text[:i] + piece + text[j:]
        else:
            text = text[:j] + text[i:j] + text[j:]
    return text
