"""Reading pickled datasets (WESAD, DEAP) with a restricted unpickler and a size budget.

Public datasets ship as Python pickles, and a pickle is a small program: it may name any
function and call it, and a few bytes may ask for gigabytes (a memo index of 10⁸, an array
"reconstructed" with a shape of 10⁹, one array referenced a million times). :func:`read_array_pickle`
runs the pickle in Python's pure-Python unpickler with every dangerous operation checked:

* only NumPy arrays, dtypes and scalars, dicts, lists, ``OrderedDict`` and strings are built, and
  the only calls allowed are the few that NumPy's own pickles make (``_reconstruct`` of an empty
  ``ndarray``, ``dtype``, ``scalar``, ``_codecs.encode``); object arrays are refused;
* every length the file declares must fit in what is left of the file, so nothing is allocated
  that the file does not hold (the memo is a dict, so a huge memo index costs nothing);
* after loading, the *expanded* size of what was built - every reference counted as often as it is
  referenced, as ``numpy.asarray`` would expand it - must stay within ``max_bytes`` (default:
  twice the file plus 64 MiB), nesting within :data:`MAX_DEPTH`, and no structure may contain
  itself.

Anything else is a :class:`~engage.datasets.base.DatasetError` naming the file; nothing is ever
executed.

>>> import pickle, tempfile, pathlib, numpy as np
>>> p = pathlib.Path(tempfile.mkdtemp()) / "ok.pkl"
>>> _ = p.write_bytes(pickle.dumps({"x": np.arange(3.0)}, protocol=2))
>>> read_array_pickle(p)["x"].tolist()
[0.0, 1.0, 2.0]
>>> _ = p.write_bytes(b"\\x80\\x02Nr\\x00\\xe1\\xf5\\x05.")     # 9 bytes: memo index 10⁸
>>> read_array_pickle(p) is None
True
"""

from __future__ import annotations

import codecs
import io
import math
import os
import pickle
import struct
from collections import OrderedDict
from pathlib import Path

import numpy as np

from .base import DatasetError, require_file

#: deepest nesting of containers accepted (WESAD: 3)
MAX_DEPTH = 32
#: longest text line a protocol-0 opcode may use
MAX_LINE = 1 << 16


class _Refused(pickle.UnpicklingError):
    pass


class _BoundedFile:
    """A binary file that refuses to read past its end: a length declared in the pickle must fit in
    what the file still holds (so no buffer is allocated for bytes that do not exist)."""

    def __init__(self, f, size: int) -> None:
        self._f = f
        self.left = size

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            n = self.left
        if n > self.left:
            raise _Refused(f"a length of {n} bytes runs past the end of the file ({self.left} left)")
        data = self._f.read(n)
        self.left -= len(data)
        return data

    def readline(self) -> bytes:
        line = self._f.readline(MAX_LINE)
        self.left -= len(line)
        if len(line) == MAX_LINE and not line.endswith(b"\n"):
            raise _Refused(f"a text opcode longer than {MAX_LINE} bytes")
        return line


def _dtype(*args):
    dt = np.dtype(*args)
    if dt.hasobject:
        raise _Refused("object arrays are refused")
    return dt


def _reconstruct(subtype, shape, dtype):
    """NumPy's pickles start every array empty (shape (0,)) and fill it in BUILD; a non-empty
    shape here would allocate memory the file does not hold."""
    if subtype is not np.ndarray:
        raise _Refused(f"_reconstruct of {subtype!r}")
    dt = _dtype(dtype)
    dims = tuple(shape) if isinstance(shape, (tuple, list)) else (shape,)
    if not all(isinstance(d, int) and 0 <= d for d in dims) or math.prod(dims) * max(dt.itemsize, 1) > 1024:
        raise _Refused(f"array shape {dims!r} before its data")
    return np.ndarray.__new__(np.ndarray, dims, dt)


def _frombuffer(buf, dtype, shape, order="C"):
    """Protocol 5's in-band array: exactly the bytes the shape needs."""
    dt = _dtype(dtype)
    if not isinstance(buf, (bytes, bytearray)) or order not in ("C", "F"):
        raise _Refused("malformed protocol-5 array")
    return np.frombuffer(buf, dtype=dt).reshape(shape, order=order).copy()


def _scalar(dtype, data=None):
    dt = _dtype(dtype)
    if not isinstance(data, (bytes, str)) or len(data) != dt.itemsize:
        raise _Refused("malformed NumPy scalar")
    return np.frombuffer(data.encode("latin1") if isinstance(data, str) else data, dtype=dt)[0]


def _encode(text, encoding="latin1"):
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise _Refused("_codecs.encode is only used by NumPy for latin-1 bytes")
    return codecs.encode(text, encoding)


def _plain(cls):
    def make(*args):
        if len(args) > 1 or any(not isinstance(a, (list, tuple, dict)) for a in args):
            raise _Refused(f"{cls.__name__}() with unexpected arguments")
        return cls(*args)
    return make


#: (module, name) → what the name stands for while unpickling; the callables check their arguments
_NAMES = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): _dtype,
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy.core.multiarray", "scalar"): _scalar,
    ("numpy._core.multiarray", "scalar"): _scalar,
    ("numpy.core.numeric", "_frombuffer"): _frombuffer,
    ("numpy._core.numeric", "_frombuffer"): _frombuffer,
    ("_codecs", "encode"): _encode,
    ("collections", "OrderedDict"): _plain(OrderedDict),
    ("builtins", "dict"): _plain(dict),
    ("builtins", "list"): _plain(list),
    ("__builtin__", "dict"): _plain(dict),
    ("__builtin__", "list"): _plain(list),
}
_CALLABLE = {id(v) for k, v in _NAMES.items() if k != ("numpy", "ndarray")}


class _Unpickler(pickle._Unpickler):  # the pure-Python unpickler: each opcode can be checked
    dispatch = dict(pickle._Unpickler.dispatch)

    def find_class(self, module: str, name: str):
        try:
            return _NAMES[(module, name)]
        except (KeyError, TypeError):
            raise _Refused(f"refused to load {module}.{name} (only NumPy arrays are allowed)") from None

    def _reduce(self):
        args = self.stack.pop()
        func = self.stack[-1]
        if id(func) not in _CALLABLE or not isinstance(args, tuple):
            raise _Refused(f"refused to call {getattr(func, '__name__', type(func).__name__)}")
        self.stack[-1] = func(*args)

    def _build(self):
        state = self.stack.pop()
        inst = self.stack[-1]
        if type(inst) is np.ndarray:
            if not isinstance(state, tuple) or not state or not isinstance(state[-1], (bytes, str)):
                raise _Refused("malformed array state")
            if not any(isinstance(s, np.dtype) and not s.hasobject for s in state):
                raise _Refused("array state without a plain dtype")
            inst.__setstate__(state)
        elif isinstance(inst, np.dtype):
            inst.__setstate__(state)
            if inst.hasobject:
                raise _Refused("object arrays are refused")
        else:
            raise _Refused(f"refused to set the state of a {type(inst).__name__}")

    def _bytearray8(self):
        (n,) = struct.unpack("<Q", self.read(8))
        self.append(bytearray(self.read(n)))

    def _refuse(self):
        raise _Refused("refused opcode (objects, persistent ids and buffers are not allowed)")

    dispatch[pickle.REDUCE[0]] = _reduce
    dispatch[pickle.BUILD[0]] = _build
    dispatch[pickle.BYTEARRAY8[0]] = _bytearray8
    for _op in (pickle.NEWOBJ, pickle.NEWOBJ_EX, pickle.OBJ, pickle.INST, pickle.PERSID, pickle.BINPERSID,
                pickle.NEXT_BUFFER, pickle.READONLY_BUFFER, pickle.EXT1, pickle.EXT2, pickle.EXT4):
        dispatch[_op[0]] = _refuse
    del _op


def expanded_size(obj, limit: float, max_depth: int = MAX_DEPTH) -> int:
    """Bytes that ``obj`` stands for with every reference expanded (what ``numpy.asarray`` of it
    would hold, roughly).

    Parameters
    ----------
    obj
        Unpickled containers and arrays.
    limit
        The most bytes allowed.
    max_depth
        The deepest nesting allowed.

    Returns
    -------
    int
        The expanded size; ``ValueError`` past ``limit``, ``max_depth`` or on a cycle.

    Examples
    --------
    >>> a = np.zeros(100)
    >>> expanded_size([a, a], 1e6)
    1616
    """
    sizes: dict[int, int] = {}
    active: set[int] = set()

    def size(x, depth: int) -> int:
        key = id(x)
        if key in sizes:
            return sizes[key]
        if depth > max_depth:
            raise ValueError(f"containers nested deeper than {max_depth}")
        if isinstance(x, np.ndarray):
            n = int(x.nbytes)
        elif isinstance(x, (str, bytes, bytearray)):
            n = len(x)
        elif isinstance(x, (list, tuple, dict)):
            if key in active:
                raise ValueError("a structure that contains itself")
            active.add(key)
            items = list(x.items()) if isinstance(x, dict) else [(v,) for v in x]
            n = 8 * len(x)
            for pair in items:
                for v in pair:
                    n += size(v, depth + 1)
                    if n > limit:
                        raise ValueError(f"expands to more than {limit:.0f} bytes")
            active.discard(key)
        else:
            n = 8
        if n > limit:
            raise ValueError(f"expands to more than {limit:.0f} bytes")
        sizes[key] = n
        return n

    return size(obj, 0)


def read_array_pickle(path: str | os.PathLike, max_bytes: int | None = None) -> object:
    """Load a (latin-1, Python 2 or 3) pickle holding only dicts, lists and NumPy arrays.

    Parameters
    ----------
    path
        The pickle file.
    max_bytes
        The most that the loaded data may expand to (every shared reference counted each time);
        default twice the file's size plus 64 MiB.

    Returns
    -------
    object
        The unpickled dicts, lists and arrays.

    Raises
    ------
    DatasetError
        Naming the file, for anything else in it: other types, calls, object arrays, lengths past
        the end of the file, a structure beyond the budget, or a damaged pickle.

    Examples
    --------
    >>> import pickle, tempfile, pathlib, numpy as np
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "S2.pkl"
    >>> _ = p.write_bytes(pickle.dumps({"label": np.zeros(4, np.int32)}, protocol=2))
    >>> read_array_pickle(p)["label"].shape
    (4,)
    """
    path = Path(path)
    require_file(path, "pickle file")
    size = path.stat().st_size
    budget = 2 * size + (64 << 20) if max_bytes is None else int(max_bytes)
    try:
        with open(path, "rb") as f:
            doc = _Unpickler(_BoundedFile(io.BufferedReader(f), size), encoding="latin1").load()
        expanded_size(doc, budget)
    except Exception as exc:  # noqa: BLE001 - a pickle is a program: whatever it does wrong is a bad file
        msg = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        raise DatasetError(f"{path}: unreadable pickle ({msg})") from None
    return doc


__all__ = ["MAX_DEPTH", "expanded_size", "read_array_pickle"]
