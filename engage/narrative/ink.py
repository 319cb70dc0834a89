"""Stories written in ink (inkle's narrative scripting language), played with the PyPI runtime ``bink``.

Writers author in ink and compile to JSON with inklecate or the npm ``inkjs`` compiler
(``npx inkjs-compiler -o story.ink.json story.ink``). :func:`load_ink` checks the compiled
file *before* handing it to the runtime - size limit, UTF-8, JSON, an ``inkVersion`` the
runtime supports (18 … 21), a ``root`` container - and raises :class:`StoryError` naming the
problem; nothing in the file is executed beyond what the ink runtime interprets.

An :class:`InkPlayer` plays the story for one viewer. A *scene* is the content between two
choice points. Its tags are ink tags of the form ``key: value`` (or a bare ``key`` meaning
true) written at the top of a knot: ``intensity``, ``tone``, ``palette``, ``duration``,
``cast`` (comma-separated), ``act``, ``interruptible``, ``cut_to`` (a knot the controller may
cut to when the viewer is bored here), ``ending``. Each choice is an option whose tags
(``intensity``, ``fate_point``…) describe what follows, so the controller reads them without
playing them. Story state (who is alive, what is known) lives in the story's global variables
(:meth:`InkPlayer.facts`). Untagged stories (like inkle's *The Intercept*) still play: each
scene gets intensity 0.5 and a duration from its word count.

>>> from engage.narrative.ink import load_ink, sample_ink_path
>>> player = load_ink(sample_ink_path())
>>> first = player.begin()
>>> first.id, first.intensity, [o.title for o in player.options()][:2]
('studio', 0.2, ['Read the late letters', 'Take the caller on line two'])
"""

from __future__ import annotations

import json
import math
import re
import time
from dataclasses import replace
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping

from .story import MAX_STORY_BYTES, Scene, StoryError

#: ink JSON format versions the bundled runtime (bink / blade-ink) can play.
INK_VERSIONS = (18, 21)
#: Defaults for untagged content.
DEFAULT_INTENSITY = 0.5
WORDS_PER_SECOND = 2.5
MIN_SCENE_S, MAX_SCENE_S = 8.0, 90.0
#: Longest time the runtime may take to produce one line.
MAX_LINE_S = 2.0
_SLICE_MS = 50.0
#: A playthrough longer than this many scenes is reported as not ending (a loop in the story).
MAX_SCENES = 5000

#: The id of the single option where a scene runs on into the next knot without a choice.
NEXT = "next"

_TAG = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(?::\s*(.*?))?\s*$")


def sample_ink_path() -> Path:
    """The packaged sample ink story, *The Last Broadcast* (compiled JSON)."""
    return Path(str(resources.files("engage.narrative").joinpath("stories", "last_broadcast.ink.json")))


def parse_tags(tags) -> dict[str, Any]:
    """``["intensity: 0.8", "fate_point", "cast: Lena, Nadia"]`` → a dict with typed values.

    >>> parse_tags(["intensity: 0.8", "fate_point", "cast: Lena, Nadia", "# odd"])
    {'intensity': 0.8, 'fate_point': True, 'cast': 'Lena, Nadia'}
    """
    out: dict[str, Any] = {}
    for raw in tags:
        m = _TAG.match(str(raw))
        if not m:
            continue
        key, value = m.group(1).lower(), m.group(2)
        if value is None or value == "":
            out[key] = True
            continue
        try:
            number = float(value)
            out[key] = number if math.isfinite(number) else value
        except ValueError:
            low = value.lower()
            out[key] = True if low == "true" else False if low == "false" else value
    return out


def check_ink_json(raw: bytes, source: str = "<ink>") -> dict:
    """Check compiled ink JSON without running it; returns the parsed document or raises
    :class:`StoryError` listing what is wrong (size, encoding, JSON, ink version, structure)."""
    if len(raw) > MAX_STORY_BYTES:
        raise StoryError(source, [f"file is {len(raw) / 1e6:.1f} MB, over the {MAX_STORY_BYTES // (1024 * 1024)} MB "
                                  "limit for a story; refusing to parse it"])
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise StoryError(source, [f"not UTF-8 text (invalid byte at offset {exc.start})"]) from None
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise StoryError(source, [f"not compiled ink JSON ({exc}); compile the .ink source first, e.g. "
                                  "npx inkjs-compiler -o story.ink.json story.ink"]) from None
    if not isinstance(doc, dict):
        raise StoryError(source, [f"not compiled ink JSON: top level is {type(doc).__name__}, not an object"])
    version = doc.get("inkVersion")
    low, high = INK_VERSIONS
    if not isinstance(version, int) or isinstance(version, bool):
        raise StoryError(source, [f"no integer 'inkVersion' (got {version!r}); is this compiled ink JSON?"])
    if not low <= version <= high:
        hint = "recompile it with a current inklecate or inkjs" if version < low else "upgrade engage's ink runtime (bink)"
        raise StoryError(source, [f"ink version {version} is not supported (this runtime plays ink versions "
                                  f"{low}-{high}); {hint}"])
    if not isinstance(doc.get("root"), list):
        raise StoryError(source, ["compiled ink JSON has no 'root' container"])
    return doc


def _variables(doc: dict) -> list[str]:
    """Names of the story's global variables, from its ``global decl`` container."""
    names: list[str] = []
    root = doc.get("root")
    named = root[-1] if isinstance(root, list) and root and isinstance(root[-1], dict) else {}
    decl = named.get("global decl", []) if isinstance(named, dict) else []
    for item in decl if isinstance(decl, list) else []:
        if isinstance(item, dict) and isinstance(item.get("VAR="), str):
            names.append(item["VAR="])
    return names


def _knots(doc: dict) -> list[str]:
    root = doc.get("root")
    named = root[-1] if isinstance(root, list) and root and isinstance(root[-1], dict) else {}
    return [k for k in named if k != "global decl" and not k.startswith("#")] if isinstance(named, dict) else []


def load_ink(path: str | Path, seed: int | None = None) -> "InkPlayer":
    """Read, check and load a compiled ink story; raises :class:`StoryError` on any problem."""
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
    return InkPlayer(raw, source=source)


class InkPlayer:
    """Plays a compiled ink story scene by scene (see the module docstring).

    The protocol shared with :class:`~engage.narrative.story.GraphPlayer`: :meth:`begin`,
    :meth:`options`, :meth:`peek`, :meth:`follow`, :meth:`cut_to`, :meth:`facts`.
    """

    def __init__(self, compiled: bytes | str, source: str = "<ink>") -> None:
        raw = compiled.encode("utf-8") if isinstance(compiled, str) else compiled
        doc = check_ink_json(raw, source)
        try:
            from bink.story import Story as BinkStory
        except ImportError as exc:  # pragma: no cover - bink is a dependency
            raise StoryError(source, [f"the ink runtime 'bink' is not installed ({exc})"]) from None
        self.source = source
        self.variables = _variables(doc)
        self.knots = _knots(doc)
        self.title = Path(source).name.split(".")[0] if source != "<ink>" else "ink story"
        self.id = self.title
        self._errors: list[str] = []
        try:
            self._ink = BinkStory(raw.decode("utf-8-sig"))
        except RuntimeError as exc:
            raise StoryError(source, [f"the ink runtime refused the story: {exc}"]) from None
        self._ink.set_error_handler(lambda message, is_error: self._errors.append(message) if is_error else None)
        # A knot's own tags open its first line: they tell which knot a scene starts in.
        self._by_tags: dict[tuple[str, ...], str] = {}
        for k in self.knots:
            try:
                own = tuple(self._ink.get_tags_for_content_at_path(k))
            except RuntimeError:
                continue
            if own:
                self._by_tags.setdefault(own, k)
        self.current: Scene | None = None
        self._carry: tuple[str, list[str], str] | None = None
        self._count = 0
        self._options: tuple[Scene, ...] = ()

    # -- reading -------------------------------------------------------------------------------

    def _continue_line(self) -> str:
        """One line, in slices of the runtime's time budget: a story that diverts in a circle
        without output would otherwise hang the runtime forever."""
        start = time.monotonic()
        while not self._ink.continue_async(_SLICE_MS):
            if time.monotonic() - start > MAX_LINE_S:
                raise StoryError(self.source, [f"the story produced no line within {MAX_LINE_S:g} s: an endless "
                                               "loop of diverts with no text or choice"])
        return self._ink.get_current_text()

    def _knot_tags(self, knot: str) -> dict[str, Any]:
        try:
            return parse_tags(list(self._ink.get_tags_for_content_at_path(knot)))
        except RuntimeError:
            return {}

    def _read(self) -> Scene:
        """Continue to the next choice point or the end and make the text so far one scene."""
        entered: list[str] = []
        lines: list[str] = []
        tags: dict[str, Any] = {}
        guard = 0
        if self._carry is not None:  # the first line of a knot that ended the previous scene
            text, line_tags, knot = self._carry
            self._carry = None
            lines.append(text)
            entered.append(knot)
            tags.update(parse_tags(line_tags))
        while self._ink.can_continue():
            try:
                text = self._continue_line()
                line_tags = list(self._ink.get_current_tags())
            except RuntimeError as exc:
                raise StoryError(self.source, [f"ink runtime error while playing: {exc}"]) from None
            knot = self._by_tags.get(tuple(line_tags)) if line_tags else None
            if knot is not None and lines:  # a tagged knot starts a new scene
                self._carry = (text, line_tags, knot)
                break
            lines.append(text)
            if knot is not None:
                entered.append(knot)
            for k, v in parse_tags(line_tags).items():
                tags.setdefault(k, v)
            guard += 1
            if guard > 20_000:
                raise StoryError(self.source, ["a scene produced over 20000 lines without a choice (a loop?)"])
        if self._errors:
            errors, self._errors = self._errors, []
            raise StoryError(self.source, [f"ink runtime error: {e}" for e in errors])
        knot = entered[0] if entered else ""
        if knot:
            for k, v in self._knot_tags(knot).items():
                tags.setdefault(k, v)
        text = "".join(lines).strip()
        self._count += 1
        scene_id = knot if knot and not knot[0].isdigit() else f"scene-{self._count}"
        return self._scene(scene_id, text, tags, self._count)

    def _scene(self, scene_id: str, text: str, tags: Mapping[str, Any], count: int) -> Scene:
        intensity = tags.get("intensity", DEFAULT_INTENSITY)
        if not isinstance(intensity, float) or not 0.0 <= intensity <= 1.0:
            intensity = DEFAULT_INTENSITY
        duration = tags.get("duration")
        if not isinstance(duration, float) or not duration > 0:
            words = len(text.split())
            duration = min(MAX_SCENE_S, max(MIN_SCENE_S, words / WORDS_PER_SECOND))
        cast = tags.get("cast")
        cast_t = tuple(c.strip() for c in cast.split(",") if c.strip()) if isinstance(cast, str) else ()
        title = text.split("\n", 1)[0][:60] if text else scene_id
        interruptible = bool(tags.get("interruptible", False))
        clean = {k: v for k, v in tags.items() if k not in ("intensity", "duration", "cast")}
        clean["visit"] = count
        return Scene(scene_id, title, text, float(intensity), str(tags.get("tone", "neutral")), float(duration),
                     str(tags.get("palette", "neutral")), cast_t, (), interruptible, MappingProxyType(clean))

    def _make_options(self) -> tuple[Scene, ...]:
        if self._carry is not None:  # no choice here: the story simply goes on into the next knot
            own = self._knot_tags(self._carry[2])
            intensity = own.get("intensity", DEFAULT_INTENSITY)
            if not isinstance(intensity, float) or not 0.0 <= intensity <= 1.0:
                intensity = DEFAULT_INTENSITY
            return (Scene(NEXT, self._carry[2], "", float(intensity), str(own.get("tone", "neutral")), MIN_SCENE_S,
                          str(own.get("palette", "neutral")), (), (), True, MappingProxyType({"continue": True})),)
        choices = self._ink.get_current_choices()
        out = []
        for i in range(len(choices)):
            tags = parse_tags(list(choices.get_tags(i)))
            text = choices[i].strip()
            intensity = tags.get("intensity", DEFAULT_INTENSITY)
            if not isinstance(intensity, float) or not 0.0 <= intensity <= 1.0:
                intensity = DEFAULT_INTENSITY
            extra = {k: v for k, v in tags.items() if k != "intensity"}
            extra["choice_index"] = i
            if "intensity" not in tags:
                extra["untagged"] = True
            out.append(Scene(f"c{i}", text or f"choice {i + 1}", "", float(intensity), str(tags.get("tone", "neutral")),
                             MIN_SCENE_S, str(tags.get("palette", "neutral")), (), (), True, MappingProxyType(extra)))
        return tuple(out)

    # -- the player protocol -------------------------------------------------------------------

    def begin(self) -> Scene:
        """Start (again) from the top; returns the first scene."""
        self._ink.reset_state()
        self._carry = None
        self._count = 0
        self.current = self._read()
        self._options = self._make_options()
        return self.current

    def options(self, current: Scene | None = None) -> tuple[Scene, ...]:
        """The choices at the end of the current scene (empty: the story has ended)."""
        return self._options

    def peek(self, option_id: str) -> Scene:
        """The scene an option leads to, without committing to it (the state is restored)."""
        saved = self._ink.save_state()
        count, carry = self._count, self._carry
        try:
            if option_id != NEXT:
                self._ink.choose_choice_index(self._index(option_id))
            return self._read()
        finally:
            self._ink.load_state(saved)
            self._count, self._carry = count, carry

    def peek_cut(self, target: str) -> Scene:
        """The scene a ``cut_to`` jump would play, without taking it."""
        if target not in self.knots:
            raise StoryError(self.source, [f"cut_to target {target!r} is not a knot"])
        saved = self._ink.save_state()
        count, carry = self._count, self._carry
        try:
            self._carry = None
            self._ink.choose_path_string(target)
            return self._read()
        finally:
            self._ink.load_state(saved)
            self._count, self._carry = count, carry

    def follow(self, option_id: str) -> Scene:
        """Take an option; returns the scene it leads to."""
        if option_id != NEXT:
            self._ink.choose_choice_index(self._index(option_id))
        self.current = self._read()
        self._options = self._make_options()
        return self.current

    def cut_to(self, target: str) -> Scene:
        """Jump to a knot (a ``cut_to`` tag); :class:`StoryError` if there is no such knot."""
        if target not in self.knots:
            raise StoryError(self.source, [f"cut_to target {target!r} is not a knot"])
        self._carry = None
        self._ink.choose_path_string(target)
        self.current = self._read()
        self._options = self._make_options()
        return self.current

    def facts(self) -> dict[str, Any]:
        """The story's global variables now (who is alive, what is known)."""
        out = {}
        for name in self.variables:
            try:
                out[name] = self._ink.get_variable(name)
            except RuntimeError:
                continue
        return out

    def _index(self, option_id: str) -> int:
        for o in self._options:
            if o.id == option_id:
                return int(o.tags["choice_index"])
        raise KeyError(f"{self.source}: no option {option_id!r} at this choice point")


def check_ink(path: str | Path, seeds: int = 3) -> tuple[list[str], list[str]]:
    """(errors, warnings) for a compiled ink story: the load checks, then ``seeds`` random
    playthroughs that must reach an ending within :data:`MAX_SCENES` scenes."""
    import random

    try:
        player = load_ink(path)
    except StoryError as exc:
        return exc.problems, []
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
    for k in player.knots:
        tags = player._knot_tags(k)
        if "intensity" in tags and not (isinstance(tags["intensity"], float) and 0 <= tags["intensity"] <= 1):
            warnings.append(f"knot {k!r}: tag intensity must be a number within [0, 1], got {tags['intensity']!r}")
        target = tags.get("cut_to")
        if target is not None and target not in player.knots:
            warnings.append(f"knot {k!r}: cut_to target {target!r} is not a knot")
    return [], warnings


def with_text(scene: Scene, text: str) -> Scene:
    """A copy of ``scene`` with other text (used by rewriters)."""
    return replace(scene, text=text)
