"""The story graph: scenes, the choices between them, and a safe TOML loader.

A story is a directed graph of :class:`Scene` s. Each scene lists the scenes that may follow it
in ``next``: one entry is simply the way on, several make a choice point (authors put the calm,
"authored" option first), and an empty list is an ending. Stories are written in TOML and read
with :mod:`tomllib`, so loading a story never executes anything.

Loading is strict: a file that is not TOML, a missing or unknown key, a wrong type, an intensity
outside [0, 1], a duplicate id, a ``start`` or ``next`` target that does not exist, a start from
which no ending can be reached, a cycle with no exit, or a file over 5 MB raises
:class:`StoryError` (a :class:`~engage.core.errors.ConfigError`) naming the file and the scene or
key at fault. Scenes that cannot be reached from the start do not stop loading; :func:`validate`
lists them with every other problem.

>>> story = load_story_text('''
... [story]
... id = "tiny"
... title = "Tiny"
... start = "a"
... [[scene]]
... id = "a"
... title = "A"
... text = "It begins."
... intensity = 0.2
... duration_s = 60
... next = ["b"]
... [[scene]]
... id = "b"
... title = "B"
... text = "It ends."
... intensity = 0.8
... duration_s = 45
... next = []
... ''')
>>> [s.id for s in story.choices("a")], [s.id for s in story.endings()]
(['b'], ['b'])
>>> validate(story)
[]
"""

from __future__ import annotations

import difflib
import math
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping

from engage.core.errors import ConfigError
from engage.core.safeload import finite_number

#: Story files larger than this are refused before they are parsed.
MAX_STORY_BYTES = 5 * 1024 * 1024

#: How many problems a :class:`StoryError` message lists before summarising the rest.
_MAX_LISTED = 10

_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")

_STORY_REQUIRED = ("id", "title", "start")
_SCENE_REQUIRED = ("id", "title", "text", "intensity", "duration_s", "next")
_SCENE_OPTIONAL = ("tone", "palette", "cast", "interruptible", "tags")
_SCENE_DEFAULTS: dict[str, Any] = {"tone": "neutral", "palette": "neutral", "cast": (), "interruptible": True}


class StoryError(ConfigError):
    """A story that cannot be used; ``problems`` lists every problem found, ``source`` names the file."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = list(problems)
        listed = self.problems[:_MAX_LISTED]
        more = len(self.problems) - len(listed)
        if len(self.problems) == 1:
            message = f"{source}: {self.problems[0]}"
        else:
            message = f"{source}: {len(self.problems)} problems: " + "; ".join(listed)
            if more:
                message += f"; … and {more} more"
        super().__init__(message)


@dataclass(frozen=True)
class Scene:
    """One scene of a story and what a player and a policy need to know about it.

    ``intensity`` is 0 (calm) … 1 (highest stakes); ``duration_s`` is how long it plays;
    ``next`` lists the scene ids that may follow (empty: an ending). ``tags`` holds the writer's
    other tags (act, speaker, media cues, …; a tag given several times holds a tuple). ``state``
    is the story's variables after the scene's own effects and ``changes`` the ones it changed
    (ink stories; empty for story graphs).

    >>> Scene("a", "A", "Rain.", 0.2, "calm", 60.0, "grey", ("Mara",), ("b",)).is_ending
    False
    """

    id: str
    title: str
    text: str
    intensity: float
    tone: str
    duration_s: float
    palette: str
    cast: tuple[str, ...] = ()
    next: tuple[str, ...] = ()
    interruptible: bool = True
    tags: Mapping[str, Any] = field(default_factory=dict, hash=False)
    state: Mapping[str, Any] = field(default_factory=dict, hash=False)
    changes: Mapping[str, Any] = field(default_factory=dict, hash=False)

    @property
    def is_ending(self) -> bool:
        return len(self.next) == 0

    @property
    def is_choice(self) -> bool:
        return len(self.next) > 1


@dataclass(frozen=True)
class Story:
    """A story graph: its scenes by id, in the order they were written, and where it starts.

    >>> s = Story("t", "T", "a", {"a": Scene("a", "A", "", 0.1, "calm", 40.0, "grey")})
    >>> s.scene("a").title, [e.id for e in s.endings()]
    ('A', ['a'])
    """

    id: str
    title: str
    start: str
    scenes: dict[str, Scene]

    def scene(self, scene_id: str) -> Scene:
        """The scene called ``scene_id``; ``KeyError`` naming the story when there is none."""
        try:
            return self.scenes[scene_id]
        except KeyError:
            raise KeyError(f"story {self.id!r} has no scene {scene_id!r}") from None

    def endings(self) -> tuple[Scene, ...]:
        """Every scene with nothing after it, in file order."""
        return tuple(s for s in self.scenes.values() if s.is_ending)

    def choices(self, scene_id: str) -> tuple[Scene, ...]:
        """The scenes that may follow ``scene_id``, authored option first (empty at an ending)."""
        return tuple(self.scene(n) for n in self.scene(scene_id).next)

    def reachable(self, scene_id: str | None = None) -> list[str]:
        """Ids of the scenes reachable from ``scene_id`` (default: the start), itself included,
        in breadth-first order. Targets that do not exist are skipped."""
        first = self.start if scene_id is None else scene_id
        if first not in self.scenes:
            return []
        seen = {first}
        order = [first]
        i = 0
        while i < len(order):  # iterative: a 5 MB story may hold very long chains
            for n in self.scenes[order[i]].next:
                if n in self.scenes and n not in seen:
                    seen.add(n)
                    order.append(n)
            i += 1
        return order

    def authored_path(self) -> tuple[Scene, ...]:
        """The path taking the first option at every choice, from the start to an ending (or
        until it would repeat a scene)."""
        path: list[Scene] = []
        seen: set[str] = set()
        current = self.start
        while current in self.scenes and current not in seen:
            scene = self.scenes[current]
            path.append(scene)
            seen.add(current)
            if scene.is_ending:
                break
            current = scene.next[0]
        return tuple(path)


def default_story_path() -> Path:
    """The packaged sample story, ``night_train.toml``.

    >>> default_story_path().name
    'night_train.toml'
    """
    return Path(str(resources.files("engage.narrative").joinpath("stories", "night_train.toml")))


def load_story(path: str | Path) -> Story:
    """Read a story from a TOML file; raises :class:`StoryError` naming the file and the problem.

    >>> load_story(default_story_path()).start
    'platform'
    """
    path = Path(path)
    source = str(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise StoryError(source, [f"cannot read story file: {exc.strerror or exc}"]) from None
    if not path.is_file():
        raise StoryError(source, ["not a file"])
    if size > MAX_STORY_BYTES:
        raise StoryError(source, [f"file is {size / 1e6:.1f} MB, over the {MAX_STORY_BYTES // (1024 * 1024)} MB "
                                  "limit for a story; refusing to parse it"])
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise StoryError(source, [f"cannot read story file: {exc.strerror or exc}"]) from None
    # A file may grow between stat() and read(); never parse more than the limit.
    if len(raw) > MAX_STORY_BYTES:
        raise StoryError(source, [f"file is over the {MAX_STORY_BYTES // (1024 * 1024)} MB limit for a story"])
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise StoryError(source, [f"not UTF-8 text (invalid byte at offset {exc.start})"]) from None
    if path.suffix.lower() in (".yaml", ".yml"):
        return load_story_yaml_text(text, source=source)
    return load_story_text(text, source=source)


def load_story_yaml_text(text: str, source: str = "<string>") -> Story:
    """Parse a story from YAML text (the same keys as TOML: a ``story`` mapping and a ``scene``
    list). Loading is safe: only plain YAML (mappings, lists, strings, numbers, booleans) is
    accepted; a custom tag such as ``!!python/object`` is refused with an error naming it, and
    nothing in the file is executed. Nesting, size, aliases and number lengths are checked
    before anything is built (:mod:`engage.core.safeload`).

    >>> load_story_yaml_text("story: !!python/object/apply:os.system [echo hi]")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    engage.narrative.story.StoryError: <string>: YAML tag 'tag:yaml.org,2002:python/object/apply:os.system' is not allowed ...
    """
    from engage.core.safeload import LoadError, load_yaml

    if not isinstance(text, str):
        raise StoryError(source, [f"story text must be a str, got {type(text).__name__}"])
    if len(text) > MAX_STORY_BYTES:
        raise StoryError(source, [f"text is over the {MAX_STORY_BYTES // (1024 * 1024)} MB limit for a story"])
    try:
        doc = load_yaml(text)
    except LoadError as exc:
        raise StoryError(source, [exc.problem]) from None
    if not isinstance(doc, dict):
        raise StoryError(source, [f"a YAML story must be a mapping with 'story' and 'scene', got {_type_name(doc)}"])
    return _story_from_doc(doc, source)


def open_story(path: str | Path, overlay: str | Path | None = None) -> Any:
    """A player for any story file: compiled ink JSON (``.json``) → :class:`~engage.narrative.ink.InkPlayer`
    (``overlay``: a TOML file adding tags to its knots), TOML or YAML → :class:`GraphPlayer`.
    Raises :class:`StoryError` on any problem.

    A bare file name that is not found here names a story shipped with engage
    (``last_broadcast.ink.json``, ``night_train.toml``).

    >>> open_story(default_story_path()).title
    'Night Train'
    >>> open_story("last_broadcast.ink.json").begin().id
    'studio'
    """
    path = Path(path)
    if not path.exists() and len(path.parts) == 1:
        shipped = default_story_path().parent / path.name
        if shipped.is_file():
            path = shipped
    if path.suffix.lower() == ".json" or path.name.endswith(".ink.json"):
        from .ink import load_ink

        return load_ink(path, overlay=overlay)
    if path.suffix.lower() == ".ink":
        raise StoryError(str(path), ["this is ink source; compile it to JSON first, e.g. "
                                     "npx inkjs-compiler -o story.ink.json story.ink"])
    if overlay is not None:
        raise StoryError(str(overlay), [f"an overlay adds tags to the knots of a compiled ink story; {path.name} is a "
                                        "story graph: put the tags in its scenes instead"])
    return GraphPlayer(load_story(path))


def load_story_text(text: str, source: str = "<string>") -> Story:
    """Parse a story from TOML text; ``source`` names it in error messages.

    >>> load_story_text("not = [toml").title  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    engage.narrative.story.StoryError: <string>: not valid TOML: ...
    """
    if not isinstance(text, str):
        raise StoryError(source, [f"story text must be a str, got {type(text).__name__}"])
    if len(text) > MAX_STORY_BYTES or len(text.encode("utf-8", "surrogatepass")) > MAX_STORY_BYTES:
        raise StoryError(source, [f"text is over the {MAX_STORY_BYTES // (1024 * 1024)} MB limit for a story; "
                                  "refusing to parse it"])
    from engage.core.safeload import LoadError, load_toml

    try:
        doc = load_toml(text)
    except LoadError as exc:
        raise StoryError(source, [exc.problem]) from None
    return _story_from_doc(doc, source)


def _story_from_doc(doc: dict, source: str) -> Story:
    """A validated story from a parsed TOML/YAML document, or a :class:`StoryError` listing every problem."""
    problems: list[str] = []
    story = _build(doc, problems)
    if problems or story is None:
        raise StoryError(source, problems)
    errors, _warnings = _graph_problems(story)
    if errors:
        raise StoryError(source, errors)
    return story


def validate(story: Story) -> list[str]:
    """Every problem of ``story``, fatal or not (an empty list means none), including scenes
    that cannot be reached from the start. Works on stories built in code as well as loaded.

    >>> validate(Story("t", "T", "nowhere", {}))
    ["story.start 'nowhere' is not a scene"]
    """
    problems = _scene_problems(story)
    errors, warnings = _graph_problems(story)
    return problems + errors + warnings


def fatal_problems(story: Story) -> list[str]:
    """The problems that make ``story`` unplayable (everything :func:`validate` reports except
    unreachable scenes)."""
    return _scene_problems(story) + _graph_problems(story)[0]


# ---------------------------------------------------------------------------------------------
# parsing


def _type_name(value: Any) -> str:
    names = {bool: "boolean", int: "integer", float: "float", str: "string", list: "array", dict: "table"}
    return names.get(type(value), type(value).__name__)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _unknown(keys, known, where: str, problems: list[str]) -> None:
    for key in keys:
        if key not in known:
            close = difflib.get_close_matches(str(key), list(known), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else f" (known keys: {', '.join(sorted(known))})"
            problems.append(f"{where}: unknown key {key!r}{hint}")


def _string(value: Any, where: str, key: str, problems: list[str], allow_empty: bool = True) -> str | None:
    if not isinstance(value, str):
        problems.append(f"{where}: key {key!r} must be a string, got {_type_name(value)}")
        return None
    if not allow_empty and not value.strip():
        problems.append(f"{where}: key {key!r} must not be empty")
        return None
    return value


def _identifier(value: Any, where: str, key: str, problems: list[str]) -> str | None:
    text = _string(value, where, key, problems)
    if text is not None and not _ID_PATTERN.match(text):
        problems.append(f"{where}: key {key!r} is {text!r}; ids are letters, digits, '_', '-' and '.', "
                        "starting with a letter or digit")
        return None
    return text


def _string_list(value: Any, where: str, key: str, problems: list[str], ids: bool = False) -> tuple[str, ...] | None:
    if not isinstance(value, list):
        problems.append(f"{where}: key {key!r} must be an array of strings, got {_type_name(value)}")
        return None
    out = []
    for i, item in enumerate(value):
        check = _identifier if ids else _string
        text = check(item, where, f"{key}[{i}]", problems)
        if text is None:
            return None
        out.append(text)
    return tuple(out)


def _number(value: Any, where: str, key: str, problems: list[str]) -> float | None:
    if not _is_number(value):
        problems.append(f"{where}: key {key!r} must be a number, got {_type_name(value)}")
        return None
    if not finite_number(value):
        what = value if isinstance(value, float) else "an integer too large for a float"
        problems.append(f"{where}: key {key!r} must be finite, got {what}")
        return None
    return float(value)


def _tags(value: Any, where: str, problems: list[str]) -> Mapping[str, Any] | None:
    if not isinstance(value, dict):
        problems.append(f"{where}: key 'tags' must be a table, got {_type_name(value)}")
        return None
    out: dict[str, Any] = {}
    for key, item in value.items():
        scalars = (str, int, float, bool)
        ok = isinstance(item, scalars) or (isinstance(item, list) and all(isinstance(x, scalars) for x in item))
        if not ok:
            problems.append(f"{where}: tag {key!r} must be a string, number, boolean or an array of them, "
                            f"got {_type_name(item)}")
            return None
        out[key] = tuple(item) if isinstance(item, list) else item
    return MappingProxyType(out)


def _build(doc: dict, problems: list[str]) -> Story | None:
    _unknown(doc.keys(), ("story", "scene"), "top level", problems)
    head = doc.get("story")
    story_id = title = start = None
    if head is None:
        problems.append("missing [story] table (with id, title, start)")
    elif not isinstance(head, dict):
        problems.append(f"'story' must be a table, got {_type_name(head)}")
    else:
        _unknown(head.keys(), _STORY_REQUIRED, "[story]", problems)
        for key in _STORY_REQUIRED:
            if key not in head:
                problems.append(f"[story]: missing key {key!r}")
        if "id" in head:
            story_id = _string(head["id"], "[story]", "id", problems, allow_empty=False)
        if "title" in head:
            title = _string(head["title"], "[story]", "title", problems, allow_empty=False)
        if "start" in head:
            start = _identifier(head["start"], "[story]", "start", problems)

    raw_scenes = doc.get("scene")
    scenes: dict[str, Scene] = {}
    if raw_scenes is None:
        problems.append("no scenes: add at least one [[scene]] table")
        return None
    if not isinstance(raw_scenes, list) or not all(isinstance(s, dict) for s in raw_scenes):
        problems.append(f"'scene' must be an array of tables ([[scene]]), got {_type_name(raw_scenes)}")
        return None
    first_position: dict[str, int] = {}
    for position, raw in enumerate(raw_scenes, start=1):
        scene = _build_scene(raw, position, problems)
        if scene is None:
            continue
        if scene.id in first_position:
            problems.append(f"scene #{position}: duplicate id {scene.id!r} (first used by scene "
                            f"#{first_position[scene.id]})")
            continue
        first_position[scene.id] = position
        scenes[scene.id] = scene
    if story_id is None or title is None or start is None:
        return None
    return Story(story_id, title, start, scenes)


def _build_scene(raw: dict, position: int, problems: list[str]) -> Scene | None:
    before = len(problems)
    raw_id = raw.get("id")
    where = f"scene {raw_id!r}" if isinstance(raw_id, str) and raw_id else f"scene #{position}"
    _unknown(raw.keys(), _SCENE_REQUIRED + _SCENE_OPTIONAL, where, problems)
    for key in _SCENE_REQUIRED:
        if key not in raw:
            hint = " (use next = [] for an ending)" if key == "next" else ""
            problems.append(f"{where}: missing key {key!r}{hint}")
    values: dict[str, Any] = dict(_SCENE_DEFAULTS)
    values["tags"] = MappingProxyType({})
    if "id" in raw:
        values["id"] = _identifier(raw["id"], where, "id", problems)
    for key in ("title",):
        if key in raw:
            values[key] = _string(raw[key], where, key, problems, allow_empty=False)
    for key in ("text", "tone", "palette"):
        if key in raw:
            values[key] = _string(raw[key], where, key, problems)
    if "intensity" in raw:
        intensity = _number(raw["intensity"], where, "intensity", problems)
        if intensity is not None and not 0.0 <= intensity <= 1.0:
            problems.append(f"{where}: key 'intensity' must be within [0, 1], got {intensity:g}")
        values["intensity"] = intensity
    if "duration_s" in raw:
        duration = _number(raw["duration_s"], where, "duration_s", problems)
        if duration is not None and duration <= 0:
            problems.append(f"{where}: key 'duration_s' must be positive, got {duration:g}")
        values["duration_s"] = duration
    if "cast" in raw:
        values["cast"] = _string_list(raw["cast"], where, "cast", problems)
    if "next" in raw:
        nxt = _string_list(raw["next"], where, "next", problems, ids=True)
        if nxt is not None and len(set(nxt)) != len(nxt):
            problems.append(f"{where}: key 'next' lists a scene twice: {list(nxt)}")
        values["next"] = nxt
    if "interruptible" in raw:
        if isinstance(raw["interruptible"], bool):
            values["interruptible"] = raw["interruptible"]
        else:
            problems.append(f"{where}: key 'interruptible' must be a boolean, got {_type_name(raw['interruptible'])}")
    if "tags" in raw:
        values["tags"] = _tags(raw["tags"], where, problems)
    if len(problems) > before:
        return None
    return Scene(values["id"], values["title"], values["text"], values["intensity"], values["tone"],
                 values["duration_s"], values["palette"], values["cast"], values["next"], values["interruptible"],
                 values["tags"])


# ---------------------------------------------------------------------------------------------
# checks on a built story


def _scene_problems(story: Story) -> list[str]:
    """Field-level problems; the loader already rules these out, stories built in code may not."""
    problems = []
    for key, s in story.scenes.items():
        where = f"scene {key!r}"
        if s.id != key:
            problems.append(f"{where}: stored under {key!r} but its id is {s.id!r}")
        if not (_is_number(s.intensity) and 0.0 <= float(s.intensity) <= 1.0):
            problems.append(f"{where}: intensity must be within [0, 1], got {s.intensity!r}")
        if not (_is_number(s.duration_s) and math.isfinite(s.duration_s) and s.duration_s > 0):
            problems.append(f"{where}: duration_s must be a positive number, got {s.duration_s!r}")
        if len(set(s.next)) != len(s.next):
            problems.append(f"{where}: next lists a scene twice: {list(s.next)}")
    return problems


def _graph_problems(story: Story) -> tuple[list[str], list[str]]:
    """(fatal problems, warnings) of the graph's shape."""
    errors: list[str] = []
    warnings: list[str] = []
    scenes = story.scenes
    if story.start not in scenes:
        errors.append(f"story.start {story.start!r} is not a scene")
    # Keys, not scene.id: validate() also runs on stories built in code where the two may differ.
    for key, s in scenes.items():
        for n in s.next:
            if n not in scenes:
                errors.append(f"scene {key!r}: next target {n!r} does not exist")
    if errors:
        return errors, warnings

    reachable = story.reachable()
    # Scenes that can reach an ending: walk the edges backwards from every ending.
    incoming: dict[str, list[str]] = {k: [] for k in scenes}
    for key, s in scenes.items():
        for n in s.next:
            incoming[n].append(key)
    can_end = {key for key, s in scenes.items() if s.is_ending}
    stack = list(can_end)
    while stack:
        for p in incoming[stack.pop()]:
            if p not in can_end:
                can_end.add(p)
                stack.append(p)

    if story.start not in can_end:
        errors.append(f"no ending reachable from start {story.start!r} (every path loops forever: "
                      f"{_cycle_text(story, story.start)})")
    else:
        trapped = [k for k in reachable if k not in can_end]
        if trapped:
            names = ", ".join(repr(k) for k in trapped[:_MAX_LISTED])
            errors.append(f"scenes reachable from start can never reach an ending: {names} "
                          f"(cycle with no exit: {_cycle_text(story, trapped[0])})")
    seen = set(reachable)
    for k in scenes:
        if k not in seen:
            warnings.append(f"scene {k!r} is unreachable from start {story.start!r}")
    return errors, warnings


def _cycle_text(story: Story, first: str) -> str:
    """Follow first options from a scene that cannot reach an ending until one repeats."""
    path: list[str] = []
    index: dict[str, int] = {}
    current = first
    # Every scene that cannot reach an ending has a successor that cannot either, so this loops.
    while current not in index:
        index[current] = len(path)
        path.append(current)
        options = story.scenes[current].next
        if not options:  # defensive: cannot happen for a trapped scene
            return " → ".join(path)
        current = options[0]
    cycle = path[index[current]:] + [current]
    return " → ".join(cycle)


class GraphPlayer:
    """Plays a :class:`Story` graph scene by scene; the player protocol the controller uses
    (shared with :class:`~engage.narrative.ink.InkPlayer`): :meth:`begin`, :meth:`options`,
    :meth:`peek`, :meth:`follow`, :meth:`cut_to`, :meth:`facts`.

    >>> p = GraphPlayer(load_story(default_story_path()))
    >>> p.begin().id, [o.id for o in p.options()]
    ('platform', ['compartment'])
    """

    def __init__(self, story: Story) -> None:
        self.story = story
        self.title = story.title
        self.id = story.id
        self.source = f"story {story.id!r}"
        self.current: Scene | None = None

    def begin(self) -> Scene:
        self.current = self.story.scene(self.story.start)
        return self.current

    def options(self, current: Scene | None = None) -> tuple[Scene, ...]:
        scene = current if current is not None else self.current
        return self.story.choices(scene.id) if scene is not None else ()

    def peek(self, option_id: str) -> Scene:
        return self.story.scene(option_id)

    def peek_cut(self, target: str) -> Scene:
        return self.story.scene(target)

    def follow(self, option_id: str) -> Scene:
        self.current = self.story.scene(option_id)
        return self.current

    def cut_to(self, target: str) -> Scene:
        if target not in self.story.scenes:
            raise StoryError(self.source, [f"cut_to target {target!r} is not a scene"])
        self.current = self.story.scene(target)
        return self.current

    def facts(self) -> dict[str, Any]:
        return {}

    def tags_of(self, target: str) -> Mapping[str, Any]:
        """The tags of scene ``target`` (e.g. whether a cut-to beat is ``repeatable``)."""
        return self.story.scene(target).tags
