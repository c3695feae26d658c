"""
JSON request bodies, read the same way by the Engine and Sim.

``json.loads`` alone leaves three traps: it recurses once per level of nesting
(``[[[[...`` raises ``RecursionError``), it raises a bare ``ValueError`` for
integers longer than ``sys.get_int_max_str_digits()``, and it accepts lone
surrogates (``"\\ud800"``), which no response, file or YAML parser can encode
as UTF-8 later. All three are refused here, at the edge, as ``UnusableJson``.
"""

from __future__ import annotations

import json
import sys
from typing import Any


class UnusableJson(ValueError):
    """Well-formed JSON that cannot be used: too deep, a number too long, a lone surrogate."""


def load_json(raw: str | bytes) -> Any:
    """
    ``json.loads`` plus the checks above; ``json.JSONDecodeError`` (and
    ``UnicodeDecodeError`` for bytes) as usual for malformed input.

    >>> load_json('{"a": [1, "x"]}')
    {'a': [1, 'x']}
    >>> load_json('"\\\\ud800"')
    Traceback (most recent call last):
    ...
    flowtime.api.bodies.UnusableJson: JSON holds a lone surrogate (U+D800), which is not valid Unicode
    """
    try:
        data = json.loads(raw)
    except RecursionError:
        raise UnusableJson("JSON is nested too deeply") from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise
    except ValueError:  # an integer longer than sys.get_int_max_str_digits()
        raise UnusableJson(f"JSON holds a number longer than {sys.get_int_max_str_digits()} digits") from None
    text = raw if isinstance(raw, str) else None
    if text is None or not text.isascii() or "\\u" in text:
        try:
            json.dumps(data, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError as exc:
            raise UnusableJson(f"JSON holds a lone surrogate (U+{ord(exc.object[exc.start]):04X}), "
                               "which is not valid Unicode") from None
        except RecursionError:
            raise UnusableJson("JSON is nested too deeply") from None
    return data
