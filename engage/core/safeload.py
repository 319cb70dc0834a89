"""Guarded TOML and YAML loading for files engage did not write (stories, overlays, profiles).

The standard parsers are safe from code execution but not from cost: ``tomllib`` is quadratic
in the depth of a dotted key or table header (a 200 kB file of ``a.a.a…`` keys took 23 GB), and
a YAML document can nest without end, alias one node thousands of times or hold a 5,000-digit
integer that Python refuses to convert. So the shape of the text is measured first, without
building anything - nesting depth, dotted-key depth, number of keys (TOML); nesting, nodes,
aliases and number lengths (YAML, from the parser's event stream) - and only a document within
the limits is handed to the parser. Every refusal and every parser error is a
:class:`LoadError` (a :class:`~engage.core.errors.ConfigError`) whose ``problem`` says what and
where; callers prefix the file name.

>>> load_toml('a.b = 1')
{'a': {'b': 1}}
>>> load_toml("k" + ".k" * 100 + " = 1")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
engage.core.safeload.LoadError: a key or table name of 101 dotted parts (line 1); at most 32 are allowed
"""

from __future__ import annotations

import math
import numbers
import sys
from pathlib import Path
from typing import Any

from .errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10 uses the backport declared in pyproject
    import tomli as tomllib

#: Deepest nesting of arrays, tables and mappings allowed.
MAX_DEPTH = 32
#: Most dotted parts of one TOML key or table name.
MAX_DOTTED = 32
#: Most keys (TOML) or nodes (YAML) in one document.
MAX_KEYS = 200_000
#: Most YAML aliases (``*name``) in one document.
MAX_ALIASES = 100
#: Longest run of digits a number may have (Python refuses to convert more than 4,300).
MAX_DIGITS = 100


class LoadError(ConfigError):
    """A TOML or YAML text that is refused or cannot be parsed; ``problem`` says why."""

    def __init__(self, problem: str) -> None:
        self.problem = problem
        super().__init__(problem)


def toml_shape(text: str) -> dict[str, int]:
    """Measure a TOML text without parsing it: the deepest nesting of arrays and inline tables,
    the most dotted parts of a key or table name (and its line), the number of keys.

    >>> toml_shape('[a.b]\\nx = [[1], {y.z = 2}]  # c.d\\n')
    {'depth': 2, 'dotted': 2, 'dotted_line': 1, 'keys': 3, 'digits': 1}
    """
    depth = max_depth = 0
    stack: list[str] = []
    dotted = max_dotted = 0
    dotted_line = 1
    keys = 0
    digits = max_digits = 0
    line = 1
    key_side = True  # at the start of a line (or after '{' / ',' in an inline table): a key comes
    header = False
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == "\n":
            line += 1
            if not stack:
                key_side, dotted = True, 0
            digits = 0
            i += 1
            continue
        if c == "#":
            j = text.find("\n", i)
            i = n if j == -1 else j
            continue
        if c in "\"'":
            triple = text.startswith(c * 3, i)
            quote = c * 3 if triple else c
            j = i + len(quote)
            while j < n:
                if c == '"' and text[j] == "\\":
                    j += 2
                    continue
                if text.startswith(quote, j):
                    break
                if text[j] == "\n":
                    line += 1
                    if not triple:
                        break
                j += 1
            i = j + len(quote)
            digits = 0
            continue
        if c.isdigit():
            digits += 1
            max_digits = max(max_digits, digits)
        elif c != "_":
            digits = 0
        if key_side:
            if c == "." and (header or key_side):
                dotted += 1
                if dotted + 1 > max_dotted:
                    max_dotted, dotted_line = dotted + 1, line
            elif c == "=":
                keys += 1
                key_side = False
                max_dotted = max(max_dotted, dotted + 1)
                dotted = 0
            elif c == "[" and not stack and not header:
                header = True
                keys += 1
                if text.startswith("[[", i):
                    i += 1
            elif c == "]" and header:
                header, dotted = False, 0
                if text.startswith("]]", i):
                    i += 1
            i += 1
            continue
        if c in "[{":
            stack.append(c)
            depth += 1
            max_depth = max(max_depth, depth)
            if c == "{":
                key_side, dotted = True, 0
        elif c in "]}":
            if stack:
                stack.pop()
                depth -= 1
        elif c == "," and stack and stack[-1] == "{":
            key_side, dotted = True, 0
        i += 1
    return {"depth": max_depth, "dotted": max_dotted, "dotted_line": dotted_line, "keys": keys, "digits": max_digits}


def _within(shape: dict[str, int], limits: list[tuple[str, int, str]]) -> None:
    for key, limit, what in limits:
        if shape[key] > limit:
            raise LoadError(f"{what}; at most {limit} are allowed")


def finite_number(value: Any) -> bool:
    """Whether ``value`` (from a parsed file or reply) is a real number a float can hold.

    Any real number counts (Python's, NumPy's scalars); booleans do not, and an integer too
    large for a float (JSON, TOML and YAML all give Python ``int`` of any size) is not finite:
    ``math.isfinite`` raises ``OverflowError`` on it instead of answering.

    Parameters
    ----------
    value
        Anything a parser gave.

    Returns
    -------
    True for a real number within the float range and not NaN or infinite.

    Example
    -------
    >>> [finite_number(v) for v in (0.5, 3, True, float("nan"), 10 ** 400, "1")]
    [True, True, False, False, False, False]
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def read_bounded(path: str | Path, max_bytes: int) -> bytes | None:
    """At most ``max_bytes`` of the file at ``path``, read without ever holding more than one byte over
    (a huge file, or one that grows while it is read, is not read whole); None when it is larger.
    ``OSError`` passes through for the caller to name the file.

    >>> import tempfile
    >>> with tempfile.NamedTemporaryFile() as f:
    ...     _ = f.write(b"12345"); f.flush()
    ...     read_bounded(f.name, 5), read_bounded(f.name, 4)
    (b'12345', None)
    """
    with open(path, "rb") as f:
        raw = f.read(max_bytes + 1)
    return raw if len(raw) <= max_bytes else None


def load_toml(text: str) -> dict[str, Any]:
    """Parse TOML text once its shape is within the limits; :class:`LoadError` otherwise."""
    if not isinstance(text, str):
        raise LoadError(f"TOML text must be a str, got {type(text).__name__}")
    shape = toml_shape(text)
    _within(shape, [
        ("dotted", MAX_DOTTED, f"a key or table name of {shape['dotted']} dotted parts (line {shape['dotted_line']})"),
        ("depth", MAX_DEPTH, f"arrays or inline tables nested {shape['depth']} deep"),
        ("keys", MAX_KEYS, f"{shape['keys']} keys"),
        ("digits", MAX_DIGITS, f"a number of {shape['digits']} digits")])
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise LoadError(f"not valid TOML: {exc}") from None
    except (ValueError, RecursionError, MemoryError) as exc:  # lone surrogates, absurd values
        raise LoadError(f"not valid TOML: {type(exc).__name__}: {str(exc)[:200]}") from None


def yaml_shape(text: str) -> dict[str, int]:
    """Measure a YAML text from its parser events, building nothing: the deepest nesting, the
    number of nodes and aliases, the longest number (raises :class:`LoadError` on a syntax error)."""
    import yaml

    depth = max_depth = nodes = aliases = digits = 0
    try:
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
                depth += 1
                nodes += 1
                max_depth = max(max_depth, depth)
            elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
                depth -= 1
            elif isinstance(event, yaml.ScalarEvent):
                nodes += 1
                if event.style is None:  # plain scalar: a number when it reads as one
                    value = event.value.lstrip("+-")
                    run = sum(ch.isdigit() for ch in value) if value[:1].isdigit() else 0
                    digits = max(digits, run)
            elif isinstance(event, yaml.AliasEvent):
                aliases += 1
                nodes += 1
            if nodes > MAX_KEYS or aliases > MAX_ALIASES or max_depth > MAX_DEPTH:
                break
    except yaml.YAMLError as exc:
        raise LoadError(f"not valid YAML: {exc}") from None
    except (RecursionError, ValueError) as exc:
        raise LoadError(f"not valid YAML: {type(exc).__name__}") from None
    return {"depth": max_depth, "nodes": nodes, "aliases": aliases, "digits": digits}


def load_yaml(text: str) -> Any:
    """Parse plain YAML (no custom tags) once its shape is within the limits; :class:`LoadError` otherwise."""
    import re

    import yaml

    if not isinstance(text, str):
        raise LoadError(f"YAML text must be a str, got {type(text).__name__}")
    shape = yaml_shape(text)
    _within(shape, [("depth", MAX_DEPTH, "mappings or sequences nested too deep"),
                    ("nodes", MAX_KEYS, "too many nodes"), ("aliases", MAX_ALIASES, "too many aliases (*name)"),
                    ("digits", MAX_DIGITS, f"a number of {shape['digits']} digits")])
    try:
        return yaml.safe_load(text)
    except yaml.constructor.ConstructorError as exc:
        problem = getattr(exc, "problem", "") or ""
        m = re.search(r"tag '([^']+)'", problem)
        name = m.group(1) if m else problem
        where = f" (line {exc.problem_mark.line + 1})" if getattr(exc, "problem_mark", None) else ""
        raise LoadError(f"YAML tag {name!r} is not allowed{where}: stories are plain data, loaded safely; nothing "
                        "in them is executed") from None
    except yaml.YAMLError as exc:
        raise LoadError(f"not valid YAML: {exc}") from None
    except (RecursionError, ValueError, OverflowError, MemoryError, TypeError) as exc:
        raise LoadError(f"not valid YAML: {type(exc).__name__}: {str(exc)[:200]}") from None
