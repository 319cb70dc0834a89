"""Stories written in ink (inkle's narrative scripting language), played with the PyPI runtime ``bink``.

Writers author in ink and compile to JSON with inklecate or the npm ``inkjs`` compiler
(``npx inkjs-compiler -o story.ink.json story.ink``). :func:`load_ink` checks the compiled
file *before* handing it to the runtime - size limit, UTF-8, JSON, an ``inkVersion`` the
runtime supports (18 … 21), a ``root`` container, list definitions and list values of a sane
size, every ``EXTERNAL`` function given an ink fallback - and raises :class:`StoryError` naming
the problem. The runtime then plays the story in a worker process under a memory budget and a
time budget per line (:mod:`engage.narrative.inkrun`): a story that loops or allocates without
end is stopped and reported, and never takes the session with it.

An :class:`InkPlayer` plays the story for one viewer. A *scene* is the content between two
choice points; its id is the knot (or ``knot.stitch``) its first line comes from, else the ink
path where it starts (after a choice inside a knot). Its tags are ink tags of the form
``key: value`` (or a bare ``key`` meaning true) written at the top of a knot or on a line:
``intensity``, ``tone``, ``palette``, ``duration``, ``cast`` (comma-separated), ``act``,
``interruptible``, ``cut_to`` (a knot the controller may cut to when the viewer is bored here),
``repeatable`` (on a cut-to beat), ``ending``, ``title``, ``speaker``, media cues ``video``,
``image``, ``audio``, ``sfx`` (each may repeat), ``fate`` and any other tag, passed on to the
player. A scene inside a knot (after one of its choices) keeps the knot's intensity, tone,
palette, cast, act, ``interruptible`` and ``cut_to``. Each choice is an option whose tags
(``intensity``, ``fate_point``…) describe what follows; an untagged choice takes the intensity
and ``fate_point`` of the knot it leads to, so the controller reads them without playing them.
Story state (who is alive, what is known) lives in the story's global variables
(:meth:`InkPlayer.facts`); each scene carries the state after its own effects and the variables
it changed. ``EXTERNAL`` functions run their ink fallbacks.

An **overlay** (a TOML file, :func:`load_overlay`) adds tags to the knots of a compiled story by
name, without editing it - how an existing story like inkle's *The Intercept* is made to adapt::

    [story]
    cast = ["Harris", "Hooper"]          # names a rewrite may use besides the tagged casts

    [knot.harris_demands_component]
    intensity = 0.7
    interruptible = true
    cut_to = "harris_threatens_lynching"

Untagged stories still play: each scene gets intensity 0.5 and a duration from its word count.

>>> from engage.narrative.ink import load_ink, sample_ink_path
>>> player = load_ink(sample_ink_path())
>>> first = player.begin()
>>> first.id, first.intensity, [o.title for o in player.options()][:2]
('studio', 0.2, ['Read the late letters', 'Take the caller on line two'])
>>> player.close()
"""

from __future__ import annotations

import atexit
import difflib
import json
import math
import os
import queue
import re
import subprocess
import sys
import tempfile
import threading
import weakref
from dataclasses import replace
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any, Iterable, Mapping

from .inkrun import InkRunError, InkRunner
from .story import MAX_STORY_BYTES, Scene, StoryError

#: ink JSON format versions the bundled runtime (bink / blade-ink) can play.
INK_VERSIONS = (18, 21)
#: Defaults for untagged content.
DEFAULT_INTENSITY = 0.5
WORDS_PER_SECOND = 2.5
MIN_SCENE_S, MAX_SCENE_S = 8.0, 90.0
#: A playthrough longer than this many scenes is reported as not ending (a loop in the story).
MAX_SCENES = 5000
#: Most items of one list definition, and of one list value written in the story (the runtime's
#: cost grows with the square of a list's size: 3,000 items take 0.7 GB).
MAX_LIST_ITEMS = 1000
#: Memory the ink worker may use on top of what it starts with (MB); ``$ENGAGE_INK_MEMORY_MB``. A story at
#: the 5 MB size limit (The Intercept's knots copied 29 times, 4.8 MB) peaks at 160 MB in the worker: this
#: leaves it more than twice that, and keeps a hostile story's whole process under 0.5 GB.
MEMORY_MB = int(os.environ.get("ENGAGE_INK_MEMORY_MB", "384") or 384)
#: How long one request to the ink worker may take before it is stopped.
REQUEST_TIMEOUT_S = 15.0

#: The id of the single option where a scene runs on into the next knot without a choice.
NEXT = "next"

#: Tags a scene inside a knot (after one of its choices) takes from the knot.
INHERITED = ("intensity", "tone", "palette", "cast", "act", "interruptible", "cut_to")
#: Tags that may be given several times; the scene keeps all of them, in order.
REPEATED = ("video", "image", "audio", "sfx", "fate")

_TAG = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(?::\s*(.*?))?\s*$", re.DOTALL)
_AUTO_NAME = re.compile(r"^(c|g)-\d+$|^\d+$")


def sample_ink_path() -> Path:
    """The packaged sample ink story, *The Last Broadcast* (compiled JSON)."""
    return Path(str(resources.files("engage.narrative").joinpath("stories", "last_broadcast.ink.json")))


def _typed(value: str) -> Any:
    try:
        number = float(value)
    except ValueError:
        low = value.lower()
        return True if low == "true" else False if low == "false" else value
    return number if math.isfinite(number) else value


def parse_tags(tags: Iterable[Any]) -> dict[str, Any]:
    """``["intensity: 0.8", "fate_point", "cast: Lena, Nadia"]`` → a dict with typed values
    (the last of a repeated tag wins; see :func:`scene_tags` for a scene's).

    >>> parse_tags(["intensity: 0.8", "fate_point", "cast: Lena, Nadia", "# odd"])
    {'intensity': 0.8, 'fate_point': True, 'cast': 'Lena, Nadia'}
    """
    out: dict[str, Any] = {}
    for raw in tags:
        m = _TAG.match(str(raw))
        if not m:
            continue
        key, value = m.group(1).lower(), m.group(2)
        out[key] = True if value is None or value == "" else _typed(value)
    return out


def scene_tags(tags: Iterable[Any], into: dict[str, Any] | None = None) -> dict[str, Any]:
    """Add ``tags`` to a scene's: the first of a tag wins, media cues and fates accumulate as tuples.

    >>> scene_tags(["sfx: door.wav", "tone: calm", "sfx: rain.ogg loop", "tone: tense"])
    {'sfx': ('door.wav', 'rain.ogg loop'), 'tone': 'calm'}
    """
    out = into if into is not None else {}
    for raw in tags:
        m = _TAG.match(str(raw))
        if not m:
            continue
        key, value = m.group(1).lower(), m.group(2)
        typed = True if value is None or value == "" else _typed(value)
        if key in REPEATED:
            out[key] = tuple(out.get(key, ())) + (value if isinstance(value, str) and value else typed,)
        else:
            out.setdefault(key, typed)
    return out


# ---------------------------------------------------------------------------------------------
# The compiled JSON: checks and what the player adds to it


def check_ink_json(raw: bytes, source: str = "<ink>") -> dict:
    """Check compiled ink JSON without running it; returns the parsed document or raises
    :class:`StoryError` listing what is wrong (size, encoding, JSON, ink version, structure,
    list sizes, external functions without a fallback)."""
    if not isinstance(raw, (bytes, bytearray)):
        raise StoryError(source, [f"compiled ink must be bytes, got {type(raw).__name__}"])
    if len(raw) > MAX_STORY_BYTES:
        raise StoryError(source, [f"file is {len(raw) / 1e6:.1f} MB, over the {MAX_STORY_BYTES // (1024 * 1024)} MB "
                                  "limit for a story; refusing to parse it"])
    try:
        text = bytes(raw).decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise StoryError(source, [f"not UTF-8 text (invalid byte at offset {exc.start})"]) from None
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise StoryError(source, [f"not compiled ink JSON ({str(exc)[:200]}); compile the .ink source first, e.g. "
                                  "npx inkjs-compiler -o story.ink.json story.ink"]) from None
    if not isinstance(doc, dict):
        raise StoryError(source, [f"not compiled ink JSON: top level is {type(doc).__name__}, not an object"])
    version = doc.get("inkVersion")
    low, high = INK_VERSIONS
    if not isinstance(version, int) or isinstance(version, bool):
        raise StoryError(source, [f"no integer 'inkVersion' (got {str(version)[:40]!r}); is this compiled ink JSON?"])
    if not low <= version <= high:
        hint = "recompile it with a current inklecate or inkjs" if version < low else "upgrade engage's ink runtime (bink)"
        raise StoryError(source, [f"ink version {version} is not supported (this runtime plays ink versions "
                                  f"{low}-{high}); {hint}"])
    root = doc.get("root")
    if not isinstance(root, list) or not root:
        raise StoryError(source, ["compiled ink JSON has no 'root' container"])
    problems = _structure_problems(doc)
    if problems:
        raise StoryError(source, problems)
    return doc


def _walk(node: Any, depth: int = 0):
    """Every JSON value below ``node`` (iteratively: compiled ink nests deeply)."""
    stack = [node]
    while stack:
        item = stack.pop()
        yield item
        if isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, dict):
            stack.extend(item.values())


def _structure_problems(doc: dict) -> list[str]:
    problems: list[str] = []
    defs = doc.get("listDefs", {})
    if defs is not None and not isinstance(defs, dict):
        problems.append("'listDefs' must be an object")
    elif defs:
        for name, items in list(defs.items())[:10_000]:
            if not isinstance(items, dict):
                problems.append(f"list {str(name)[:40]!r}: its definition must be an object of items")
            elif len(items) > MAX_LIST_ITEMS:
                problems.append(f"list {str(name)[:40]!r} defines {len(items)} items; at most {MAX_LIST_ITEMS} are "
                                "allowed (the runtime's memory grows with the square of a list's size)")
            elif not all(isinstance(v, int) and not isinstance(v, bool) and abs(v) < 2**31 for v in items.values()):
                problems.append(f"list {str(name)[:40]!r}: item values must be integers within ±2^31")
    named = _named(doc)
    externals: set[str] = set()
    for item in _walk(doc.get("root")):
        if isinstance(item, dict):
            lst = item.get("list")
            if isinstance(lst, dict) and len(lst) > MAX_LIST_ITEMS:
                problems.append(f"a list value of {len(lst)} items; at most {MAX_LIST_ITEMS} are allowed")
                break
            target = item.get("x()")
            if isinstance(target, str):
                externals.add(target)
    for name in sorted(externals):
        if name not in named:
            problems.append(f"the story calls EXTERNAL function {name!r} without an ink fallback; engage binds no "
                            f"external functions, so give it one: === function {name}(…) === in the story")
    return problems


def _named(doc: dict) -> dict[str, Any]:
    root = doc.get("root")
    named = root[-1] if isinstance(root, list) and root and isinstance(root[-1], dict) else {}
    return named if isinstance(named, dict) else {}


def _variables(doc: dict) -> list[str]:
    """Names of the story's global variables, from its ``global decl`` container."""
    names: list[str] = []
    decl = _named(doc).get("global decl", [])
    for item in decl if isinstance(decl, list) else []:
        if isinstance(item, dict) and isinstance(item.get("VAR="), str):
            names.append(item["VAR="])
    return names


def _functions(doc: dict) -> set[str]:
    """Knots that are functions (called with ``f()`` or as an EXTERNAL's fallback)."""
    out = set()
    for item in _walk(doc.get("root")):
        if isinstance(item, dict):
            for key in ("f()", "x()"):
                target = item.get(key)
                if isinstance(target, str):
                    out.add(target.split(".")[0])
    return out


def _knots(doc: dict) -> list[str]:
    """The story's knots (functions excluded), in the order written."""
    functions = _functions(doc)
    return [k for k, v in _named(doc).items()
            if k != "global decl" and not k.startswith("#") and isinstance(v, list) and k not in functions]


def _stitches(doc: dict, knot: str) -> list[str]:
    container = _named(doc).get(knot)
    last = container[-1] if isinstance(container, list) and container else None
    if not isinstance(last, dict):
        return []
    return [f"{knot}.{k}" for k, v in last.items() if isinstance(v, list) and not k.startswith("#")
            and not _AUTO_NAME.match(k)]


def _container(doc: dict, path: str) -> list | None:
    parts = path.split(".")
    node = _named(doc).get(parts[0])
    for p in parts[1:]:
        last = node[-1] if isinstance(node, list) and node else None
        node = last.get(p) if isinstance(last, dict) else None
    return node if isinstance(node, list) else None


def _first_container(container: list) -> list:
    """Where ink keeps a knot's own tags: the innermost container its content starts with."""
    node = container
    for _ in range(64):
        if node and isinstance(node[0], list):
            node = node[0]
        else:
            break
    return node


def _own_tags(container: list, version: int) -> list[str]:
    """The tags written at the top of a knot or stitch, read from the compiled JSON."""
    node = _first_container(container)
    tags: list[str] = []
    i = 0
    while i < len(node):
        item = node[i]
        if version >= 21 and item == "#":
            parts = []
            i += 1
            while i < len(node) and node[i] != "/#":
                if isinstance(node[i], str) and node[i].startswith("^"):
                    parts.append(node[i][1:])
                i += 1
            tags.append("".join(parts).strip())
            i += 1
            continue
        if isinstance(item, dict) and isinstance(item.get("#"), str):
            tags.append(item["#"].strip())
            i += 1
            continue
        break
    return tags


def _count_visits(container: list) -> None:
    """Make the runtime count visits to a knot or stitch (at its start only, unless the story
    already counts them its own way): how the player knows which knot a line comes from. Only
    the container's flags change, never its content, so the story's own paths stay valid."""
    last = container[-1]
    if last is None:
        container[-1] = {"#f": 5}
    elif isinstance(last, dict):
        flags = last.get("#f")
        last["#f"] = (flags | 1) if isinstance(flags, int) and not isinstance(flags, bool) else 5


# ---------------------------------------------------------------------------------------------
# Overlays


def _overlay_value(key: str, value: Any, where: str, problems: list[str]) -> list[str]:
    """A TOML overlay value as ink tag texts."""
    scalars = (str, int, float, bool)
    if isinstance(value, list) and all(isinstance(v, scalars) for v in value):
        if key == "cast":
            return [f"cast: {', '.join(str(v) for v in value)}"]
        return [t for v in value for t in _overlay_value(key, v, where, problems)]
    if not isinstance(value, scalars):
        problems.append(f"{where}: {key} must be a string, number, boolean or an array of them")
        return []
    if isinstance(value, bool):
        return [key] if value else [f"{key}: false"]
    if isinstance(value, float) and not math.isfinite(value):
        problems.append(f"{where}: {key} must be finite")
        return []
    text = str(value)
    if "\n" in text or "#" in text:
        problems.append(f"{where}: {key} must be one line without '#'")
        return []
    return [f"{key}: {text}"]


def overlay_path(name: str | Path) -> Path:
    """An overlay file: ``name`` itself when it exists, else one shipped with engage by that name
    (``intercept`` or ``intercept.toml``: the tags for inkle's *The Intercept*).

    >>> overlay_path("intercept").name
    'intercept.toml'
    """
    p = Path(name)
    if p.exists() or len(p.parts) > 1:
        return p
    shipped = Path(str(resources.files("engage.narrative").joinpath("overlays", p.name)))
    if not shipped.suffix:
        shipped = shipped.with_suffix(".toml")
    return shipped if shipped.exists() else p


def load_overlay(path: str | Path, knots: Iterable[str]) -> tuple[dict[str, list[str]], list[str]]:
    """Read an overlay (TOML, or the name of one shipped with engage): ``{knot or knot.stitch: [tag
    texts]}`` and the extra cast. Raises :class:`StoryError` naming the file and every problem (an
    unknown knot with the closest name, a bad value, a ``cut_to`` that is not a knot)."""
    from engage.core.safeload import LoadError, load_toml

    p = overlay_path(path)
    source = str(p)
    try:
        if p.stat().st_size > 1024 * 1024:
            raise StoryError(source, ["an overlay is at most 1 MB"])
        text = p.read_bytes().decode("utf-8")
    except OSError as exc:
        raise StoryError(source, [f"cannot read the overlay: {exc.strerror or exc}"]) from None
    except UnicodeDecodeError as exc:
        raise StoryError(source, [f"not UTF-8 text (invalid byte at offset {exc.start})"]) from None
    try:
        doc = load_toml(text)
    except LoadError as exc:
        raise StoryError(source, [exc.problem]) from None
    known = list(knots)
    problems: list[str] = []
    for key in doc:
        if key not in ("story", "knot"):
            problems.append(f"unknown table [{str(key)[:40]}] (allowed: [story] and [knot.NAME])")
    head = doc.get("story", {})
    cast: list[str] = []
    if not isinstance(head, dict):
        problems.append("[story] must be a table")
    else:
        for key, value in head.items():
            if key == "cast" and isinstance(value, list) and all(isinstance(v, str) for v in value):
                cast = list(value)
            elif key == "title" and isinstance(value, str):
                continue
            else:
                problems.append(f"[story]: {str(key)[:40]!r} must be cast (an array of names) or title (a string)")
    table = doc.get("knot", {})
    if not isinstance(table, dict):
        problems.append("'knot' must be tables [knot.NAME]")
        table = {}
    tags: dict[str, list[str]] = {}
    for name, body in table.items():
        where = f"[knot.{name}]"
        if isinstance(body, dict) and name not in known and all(isinstance(v, dict) for v in body.values()) and body:
            # [knot.a.b] reads as nested tables: a stitch by its path
            for stitch, sbody in body.items():
                table_name = f"{name}.{stitch}"
                _overlay_knot(table_name, sbody, known, tags, problems)
            continue
        _overlay_knot(name, body, known, tags, problems)
    if problems:
        raise StoryError(source, problems)
    return tags, cast


def _overlay_knot(name: str, body: Any, known: list[str], tags: dict[str, list[str]], problems: list[str]) -> None:
    where = f"[knot.{name}]"
    if name not in known:
        close = difflib.get_close_matches(name, known, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        problems.append(f"{where}: the story has no knot or stitch {name!r}{hint}")
        return
    if not isinstance(body, dict):
        problems.append(f"{where}: must be a table of tags")
        return
    out: list[str] = []
    for key, value in body.items():
        if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", str(key)):
            problems.append(f"{where}: {str(key)[:40]!r} is not a tag name (letters, digits, _)")
            continue
        if key == "intensity" and not (isinstance(value, (int, float)) and not isinstance(value, bool)
                                       and 0 <= value <= 1):
            problems.append(f"{where}: intensity must be a number within [0, 1], got {value!r}")
            continue
        if key == "duration" and not (isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0):
            problems.append(f"{where}: duration must be a positive number of seconds, got {value!r}")
            continue
        if key == "cut_to" and value not in known:
            close = difflib.get_close_matches(str(value), known, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            problems.append(f"{where}: cut_to {value!r} is not a knot{hint}")
            continue
        if key in ("interruptible", "repeatable", "fate_point", "ending") and not isinstance(value, (bool, str)):
            problems.append(f"{where}: {key} must be true/false (or a name, for ending)")
            continue
        out += _overlay_value(str(key), value, where, problems)
    tags[name] = out


# ---------------------------------------------------------------------------------------------
# The worker process


def _read_lines(stream, lines: queue.Queue) -> None:
    for line in stream:
        lines.put(line)
    lines.put(None)


def _kill_all() -> None:
    for worker in list(_Worker.live):
        worker.close()


class _Worker:
    """The ink runtime in a child process under a memory budget (see :mod:`engage.narrative.inkrun`)."""

    live: "weakref.WeakSet[_Worker]" = weakref.WeakSet()

    def __init__(self, source: str, memory_mb: int = MEMORY_MB, timeout_s: float = REQUEST_TIMEOUT_S) -> None:
        self.source = source
        self.memory_mb = int(memory_mb)
        self.timeout_s = float(timeout_s)
        script = str(Path(__file__).with_name("inkrun.py"))
        self._stderr = tempfile.TemporaryFile()  # read only if the worker dies: no thread for it
        try:
            self.proc = subprocess.Popen([sys.executable, "-u", script, "--memory-mb", str(self.memory_mb)],
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr,
                                         close_fds=True)
        except OSError as exc:
            self._stderr.close()
            raise StoryError(source, [f"cannot start the ink runtime: {exc.strerror or exc}"]) from None
        self._lines: queue.Queue = queue.Queue()
        self._lock = threading.Lock()
        self.cpu_s = 0.0  # CPU time the worker spent on requests
        threading.Thread(target=_read_lines, args=(self.proc.stdout, self._lines), name="ink-out", daemon=True).start()
        _Worker.live.add(self)
        self._finalizer = weakref.finalize(self, _Worker._stop, self.proc, self._stderr)

    @staticmethod
    def _stop(proc: subprocess.Popen, stderr) -> None:
        try:
            if proc.stdin is not None and not proc.stdin.closed:
                proc.stdin.close()
            proc.wait(timeout=1.0)
        except (OSError, subprocess.TimeoutExpired, ValueError):
            proc.kill()
            try:
                proc.wait(timeout=2.0)
            except (OSError, subprocess.TimeoutExpired):
                pass
        stderr.close()

    def _died(self) -> StoryError:
        try:
            code = self.proc.wait(timeout=2.0)
        except subprocess.TimeoutExpired:
            code = None
        try:
            self._stderr.seek(0)
            err = self._stderr.read(64 * 1024).decode("utf-8", "replace")
        except (OSError, ValueError):
            err = ""
        if "memory allocation" in err or "MemoryError" in err or code in (-6, 134, 3) or "out of memory" in err:
            return StoryError(self.source, [f"the story needs more memory than the ink runtime's budget "
                                            f"({self.memory_mb} MB) allows: stopped (huge lists or a loop that "
                                            "keeps allocating?)"])
        last = err.strip().splitlines()[-1][:200] if err.strip() else f"exit code {code}"
        return StoryError(self.source, [f"the ink runtime stopped ({last})"])

    def call(self, op: str, *args: Any, timeout_s: float | None = None) -> Any:
        with self._lock:
            if self.proc.poll() is not None:
                raise self._died()
            try:
                self.proc.stdin.write(json.dumps({"op": op, "args": list(args)}).encode("utf-8") + b"\n")
                self.proc.stdin.flush()
            except (BrokenPipeError, OSError, ValueError):
                raise self._died() from None
            try:
                line = self._lines.get(timeout=timeout_s or self.timeout_s)
            except queue.Empty:
                self.proc.kill()
                raise StoryError(self.source, [f"the ink runtime did not answer within {timeout_s or self.timeout_s:g} "
                                               "s: stopped (an endless loop inside one runtime call?)"]) from None
            if line is None:
                raise self._died()
            try:
                reply = json.loads(line)
            except ValueError:
                raise StoryError(self.source, ["the ink runtime answered garbage"]) from None
            self.cpu_s += float(reply.get("cpu") or 0.0)
        if "error" in reply:
            raise StoryError(self.source, [str(reply["error"])])
        return reply.get("ok")

    def close(self) -> None:
        _Worker.live.discard(self)
        self._finalizer()


atexit.register(_kill_all)


class _Local:
    """The same protocol in this process (no budget; for tests and benchmarks)."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.runner: InkRunner | None = None

    def call(self, op: str, *args: Any, timeout_s: float | None = None) -> Any:
        try:
            if op == "init":
                self.runner = InkRunner(*args)
                return True
            return self.runner.call(op, *args)
        except InkRunError as exc:
            raise StoryError(self.source, [str(exc)]) from None

    def close(self) -> None:
        self.runner = None


# ---------------------------------------------------------------------------------------------
# The player


def load_ink(path: str | Path, seed: int | None = None, overlay: str | Path | None = None,
             sandbox: bool = True) -> "InkPlayer":
    """Read, check and load a compiled ink story (``overlay``: a TOML file adding tags to its
    knots); raises :class:`StoryError` on any problem. ``sandbox=False`` runs the runtime in this
    process, without the memory budget."""
    path = Path(path)
    source = str(path)
    try:
        if not path.is_file():
            raise StoryError(source, ["not a file"])
        if path.stat().st_size > MAX_STORY_BYTES:
            raise StoryError(source, [f"file is {path.stat().st_size / 1e6:.1f} MB, over the "
                                      f"{MAX_STORY_BYTES // (1024 * 1024)} MB limit for a story; refusing to parse it"])
        raw = path.read_bytes()
    except OSError as exc:
        raise StoryError(source, [f"cannot read story file: {exc.strerror or exc}"]) from None
    return InkPlayer(raw, source=source, overlay=overlay, sandbox=sandbox)


class InkPlayer:
    """Plays a compiled ink story scene by scene (see the module docstring).

    The protocol shared with :class:`~engage.narrative.story.GraphPlayer`: :meth:`begin`,
    :meth:`options`, :meth:`peek`, :meth:`follow`, :meth:`cut_to`, :meth:`facts`, :meth:`tags_of`.
    :meth:`close` stops the runtime's worker process (also done when the player is collected).
    """

    def __init__(self, compiled: bytes | str, source: str = "<ink>", overlay: str | Path | None = None,
                 sandbox: bool = True) -> None:
        raw = compiled.encode("utf-8") if isinstance(compiled, str) else compiled
        doc = check_ink_json(raw, source)
        version = int(doc["inkVersion"])
        self.source = source
        self.variables = _variables(doc)
        self.knots = _knots(doc)
        self.stitches = [s for k in self.knots for s in _stitches(doc, k)]
        paths = self.knots + self.stitches
        self.title = Path(source).name.split(".")[0] if source != "<ink>" else "ink story"
        self.id = self.title
        extra_cast: list[str] = []
        added: dict[str, list[str]] = {}
        if overlay is not None:
            added, extra_cast = load_overlay(overlay, paths)
            self.overlay = str(overlay)
        else:
            self.overlay = None
        own: dict[str, list[str]] = {}
        self._added = {p: scene_tags(t) for p, t in added.items()}
        self._authored: dict[str, dict[str, Any]] = {}
        for p in paths:
            container = _container(doc, p)
            if container is None or not container:
                continue
            authored = _own_tags(container, version)
            self._authored[p] = scene_tags(authored)
            own[p] = added.get(p, []) + authored
            _count_visits(container)
        self._own = {p: scene_tags(t) for p, t in own.items()}
        tagged = [p for p, t in self._own.items() if t]
        tracked = list(self._own)
        cast: list[str] = list(extra_cast)
        for t in self._own.values():
            c = t.get("cast")
            if isinstance(c, str):
                cast.extend(x.strip() for x in c.split(",") if x.strip() and x.strip() not in cast)
        self.cast = tuple(dict.fromkeys(cast))
        self._derive = bool(tagged)
        self._run = _Worker(source) if sandbox else _Local(source)
        try:
            self._run.call("init", json.dumps(doc, ensure_ascii=False), tracked, tagged, self.variables)
        except BaseException:
            self._run.close()
            raise
        self.current: Scene | None = None
        self._options: tuple[Scene, ...] = ()
        self._next: dict[str, Any] | None = None  # the last read: its choices and where it stopped

    def close(self) -> None:
        """Stop the runtime (the player cannot play after this)."""
        self._run.close()

    def __enter__(self) -> "InkPlayer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- reading -------------------------------------------------------------------------------

    def _enclosing(self, path: str) -> str | None:
        """The stitch or knot an ink path is inside."""
        parts = [p for p in str(path).split(".") if p]
        if not parts or parts[0] not in self._own:
            return None
        if len(parts) > 1 and f"{parts[0]}.{parts[1]}" in self._own:
            return f"{parts[0]}.{parts[1]}"
        return parts[0]

    def _origin(self, entered: list[str], tags: list[str]) -> str | None:
        """Which of the knots entered while a line was read it comes from: the one whose own
        tags the line carries, else the last (a knot that only diverts on holds no text)."""
        if len(entered) <= 1:
            return entered[0] if entered else None
        line = scene_tags(tags)
        for p in entered:
            authored = self._authored.get(p)
            if authored and all(line.get(k) == v for k, v in authored.items()):
                return p
        return entered[-1]

    def _scene(self, r: Mapping[str, Any]) -> Scene:
        lines = [(str(x[0]), list(x[1]), list(x[2]) if len(x) > 2 else []) for x in (r.get("lines") or [])]
        marker = None
        for text, line_tags, entered in lines:
            marker = self._origin(entered, line_tags)
            if marker is not None or text.strip():
                break
        start = re.sub(r"(\.0)+$", "", str(r.get("start") or ""))
        if marker is None and start in self._own:  # a jump (cut_to) lands at a knot's start uncounted
            marker = start
        tags: dict[str, Any] = {}
        if marker is not None:
            for k, v in self._added.get(marker, {}).items():  # the overlay's tags come first and win
                tags[k] = v
        for _text, line_tags, _entered in lines:
            scene_tags(line_tags, tags)
        if marker is not None:
            scene_id, where = marker, marker
        else:
            where = self._enclosing(start)
            scene_id = start if start and start != "0" else (where or "start")
            if where is not None:  # a scene inside a knot keeps the knot's pacing
                inherited = dict(self._own.get(where, {}))
                if "." in where:
                    for k, v in self._own.get(where.split(".")[0], {}).items():
                        inherited.setdefault(k, v)
                for k in INHERITED:
                    if k in inherited:
                        tags.setdefault(k, inherited[k])
        text = "".join(t for t, _, _ in lines).strip()
        intensity = tags.get("intensity", DEFAULT_INTENSITY)
        if not isinstance(intensity, float) or not 0.0 <= intensity <= 1.0:
            intensity = DEFAULT_INTENSITY
        duration = tags.get("duration")
        if not isinstance(duration, float) or not (0 < duration < 24 * 3600):
            words = len(text.split())
            duration = min(MAX_SCENE_S, max(MIN_SCENE_S, words / WORDS_PER_SECOND))
        cast = tags.get("cast")
        cast_t = tuple(c.strip() for c in cast.split(",") if c.strip()) if isinstance(cast, str) else ()
        title = text.split("\n", 1)[0][:60] if text else scene_id
        interruptible = tags.get("interruptible", False) is True
        clean = {k: v for k, v in tags.items() if k not in ("intensity", "duration", "cast")}
        if where is not None:
            clean["knot"] = where
        if "intensity" not in tags:
            clean["untagged"] = True
        return Scene(scene_id, title, text, float(intensity), str(tags.get("tone", "neutral")), float(duration),
                     str(tags.get("palette", "neutral")), cast_t, (), interruptible, MappingProxyType(clean),
                     MappingProxyType(dict(r.get("state") or {})), MappingProxyType(dict(r.get("changes") or {})))

    def _make_options(self, r: Mapping[str, Any]) -> tuple[Scene, ...]:
        carry = r.get("carry")
        if carry is not None:  # no choice here: the story simply goes on into the next knot
            own = self._own.get(carry, {})
            intensity = own.get("intensity", DEFAULT_INTENSITY)
            if not isinstance(intensity, float) or not 0.0 <= intensity <= 1.0:
                intensity = DEFAULT_INTENSITY
            return (Scene(NEXT, carry, "", float(intensity), str(own.get("tone", "neutral")), MIN_SCENE_S,
                          str(own.get("palette", "neutral")), (), (), True, MappingProxyType({"continue": True})),)
        out = []
        for i, (text, choice_tags) in enumerate(r.get("choices") or ()):
            tags = parse_tags(choice_tags)
            intensity = tags.get("intensity")
            extra = {k: v for k, v in tags.items() if k != "intensity"}
            extra["choice_index"] = i
            if not (isinstance(intensity, float) and 0.0 <= intensity <= 1.0) and self._derive:
                try:  # the knot it leads to tells what follows
                    target = self._scene(self._run.call("peek", i))
                except StoryError:
                    target = None
                if target is not None and not target.tags.get("untagged"):
                    intensity = target.intensity
                    extra["from_knot"] = target.id
                if target is not None and target.tags.get("fate_point") and "fate_point" not in extra:
                    extra["fate_point"] = True
            if not (isinstance(intensity, float) and 0.0 <= intensity <= 1.0):
                intensity = DEFAULT_INTENSITY
                extra["untagged"] = True
            out.append(Scene(f"c{i}", str(text).strip() or f"choice {i + 1}", "", float(intensity),
                             str(tags.get("tone", "neutral")), MIN_SCENE_S, str(tags.get("palette", "neutral")),
                             (), (), True, MappingProxyType(extra)))
        return tuple(out)

    def _take(self, r: Mapping[str, Any]) -> Scene:
        self.current = self._scene(r)
        self._next = dict(r)
        self._options = self._make_options(r)
        return self.current

    # -- the player protocol -------------------------------------------------------------------

    def begin(self) -> Scene:
        """Start (again) from the top; returns the first scene."""
        return self._take(self._run.call("begin"))

    def options(self, current: Scene | None = None) -> tuple[Scene, ...]:
        """The choices at the end of the current scene (empty: the story has ended)."""
        return self._options

    def peek(self, option_id: str) -> Scene:
        """The scene an option leads to, without committing to it."""
        return self._scene(self._run.call("peek", None if option_id == NEXT else self._index(option_id)))

    def peek_cut(self, target: str) -> Scene:
        """The scene a ``cut_to`` jump would play, without taking it."""
        self._check_target(target)
        return self._scene(self._run.call("peek_cut", target))

    def follow(self, option_id: str) -> Scene:
        """Take an option; returns the scene it leads to."""
        return self._take(self._run.call("follow", None if option_id == NEXT else self._index(option_id)))

    def cut_to(self, target: str) -> Scene:
        """Jump to a knot (a ``cut_to`` tag); :class:`StoryError` if there is no such knot."""
        self._check_target(target)
        return self._take(self._run.call("cut", target))

    def facts(self) -> dict[str, Any]:
        """The story's global variables now (who is alive, what is known)."""
        return dict(self.current.state) if self.current is not None else dict(self._run.call("facts"))

    def tags_of(self, target: str) -> Mapping[str, Any]:
        """The own tags of knot or stitch ``target`` (story and overlay)."""
        return MappingProxyType(dict(self._own.get(target, {})))

    def _check_target(self, target: str) -> None:
        if target not in self._own:
            raise StoryError(self.source, [f"cut_to target {target!r} is not a knot"])

    def _index(self, option_id: str) -> int:
        for o in self._options:
            if o.id == option_id and "choice_index" in o.tags:
                return int(o.tags["choice_index"])
        raise KeyError(f"{self.source}: no option {option_id!r} at this choice point")

    # -- the story's shape ---------------------------------------------------------------------

    def _knot_tags(self, knot: str) -> dict[str, Any]:
        return dict(self._own.get(knot, {}))


def knot_graph(path: str | Path) -> dict[str, set[str]]:
    """Which knots each knot can go on to (its diverts and choices), read from the compiled JSON."""
    doc = json.loads(Path(path).read_bytes().decode("utf-8-sig"))
    knots = set(_knots(doc))
    graph: dict[str, set[str]] = {}
    for k in knots:
        targets = set()
        for item in _walk(_named(doc).get(k)):
            if isinstance(item, dict):
                t = item.get("->")
                if isinstance(t, str) and not t.startswith("."):
                    head = t.split(".")[0]
                    if head in knots:
                        targets.add(head)
        graph[k] = targets
    return graph


def bored_loops(player: InkPlayer, graph: Mapping[str, set[str]]) -> list[str]:
    """Warnings for each ``cut_to`` that a bored viewer could take again and again: the beat leads
    back to a scene that cuts to it (the controller takes it once per playthrough unless it is
    tagged ``repeatable``; a repeatable one loops)."""
    warnings = []
    for k in player.knots:
        target = player.tags_of(k).get("cut_to")
        if not isinstance(target, str) or target not in graph:
            continue
        seen, stack, parent = {target}, [target], {target: None}
        found = False
        while stack and not found:
            node = stack.pop()
            for nxt in sorted(graph.get(node, ())):
                if nxt not in seen:
                    seen.add(nxt)
                    parent[nxt] = node
                    if nxt == k:
                        found = True
                        break
                    stack.append(nxt)
        if found:
            route, node = [], k
            while node is not None:
                route.append(node)
                node = parent[node]
            route = list(reversed(route))
            repeat = player.tags_of(target).get("repeatable")
            what = ("it is tagged repeatable, so a viewer who stays bored loops here" if repeat else
                    "the controller cuts to it once per playthrough; tag it 'repeatable' to allow more")
            warnings.append(f"knot {k!r}: a bored viewer is cut to {target!r}, which leads back here "
                            f"({k} ⇢ {' → '.join(route)}); {what}")
    return warnings


def check_ink(path: str | Path, seeds: int = 3, overlay: str | Path | None = None) -> tuple[list[str], list[str]]:
    """(errors, warnings) for a compiled ink story: the load checks, then ``seeds`` random
    playthroughs that must reach an ending within :data:`MAX_SCENES` scenes, then the tags
    (intensity range, ``cut_to`` targets) and the loops a bored viewer could be cut into."""
    import random

    try:
        player = load_ink(path, overlay=overlay)
    except StoryError as exc:
        return exc.problems, []
    try:
        warnings: list[str] = []
        if not player.knots:
            warnings.append("the story has no knots")
        for seed in range(seeds):
            rng = random.Random(seed)
            try:
                player.begin()
                for _ in range(MAX_SCENES):
                    options = player.options()
                    if not options:
                        break
                    player.follow(rng.choice(options).id)
                else:
                    return [f"playthrough {seed} did not reach an ending within {MAX_SCENES} scenes"], warnings
            except StoryError as exc:
                return exc.problems, warnings
        for k in player.knots + player.stitches:
            tags = player.tags_of(k)
            if "intensity" in tags and not (isinstance(tags["intensity"], float) and 0 <= tags["intensity"] <= 1):
                warnings.append(f"knot {k!r}: tag intensity must be a number within [0, 1], got {tags['intensity']!r}")
            target = tags.get("cut_to")
            if target is not None and target not in player.knots + player.stitches:
                warnings.append(f"knot {k!r}: cut_to target {target!r} is not a knot")
        try:
            warnings += bored_loops(player, knot_graph(path))
        except (OSError, ValueError, RecursionError):
            pass
        return [], warnings
    finally:
        player.close()


def with_text(scene: Scene, text: str) -> Scene:
    """A copy of ``scene`` with other text (used by rewriters)."""
    return replace(scene, text=text)
