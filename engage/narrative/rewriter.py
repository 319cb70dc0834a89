"""Rewriters: the next scene's text, written to the director's decision.

A rewrite changes words, never the decision: a plan's directives (pacing, palette, music
intensity, stakes) always come from the director's target at the moment the scene starts, and a
rewrite is used only if it was written for exactly those directives.

* :class:`TemplateRewriter` (the default) is deterministic and offline: the authored words are
  kept and a stage direction from the directives opens them.
* :class:`LlmRewriter` asks any OpenAI-compatible chat-completions endpoint for JSON matching
  :data:`~engage.narrative.canon.REWRITE_SCHEMA`, giving it the authored scene, the directives it
  must keep, the beats it must keep, the story state after the scene, who is dead and who dies
  in it, and the allowed cast. The reply is checked (:func:`~engage.narrative.canon.check_rewrite`);
  on problems it asks once more with the problems listed; otherwise it gives up and the
  authored scene plays. Every accepted rewrite is labelled ``ai_generated`` with the model's
  name (``rewritten_by = "llm:<model>"``).
* :class:`RewriteService` prepares LLM rewrites of the scenes that may come next *while the
  current scene plays* (on worker threads) and hands the controller only what is ready when the
  scene starts and was written for the directives of that moment: playback is never stalled; a
  late rewrite is dropped (``late``), one written for other directives too (``stale``). Template
  rewrites cost microseconds and are made when the scene starts, from the final decision.

>>> from engage.narrative.story import Scene
>>> s = Scene("tea", "Tea", "Tea with Tomas.", 0.2, "calm", 30.0, "amber", ("Lena", "Tomas"))
>>> r = TemplateRewriter().rewrite(s, {"target_intensity": 0.8})
>>> r.text, r.directives["pacing"], r.ai_generated
('[pacing fast, music 0.80, stakes high] Tea with Tomas.', 'fast', False)
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import weakref
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from engage.core.errors import ConfigError
from engage.core.safeload import read_bounded

from .canon import REWRITE_SCHEMA, check_rewrite, dead_characters, fated_dead, required_beats
from .llm import LlmClient, LlmError, ReplyError, parse_reply
from .plan import directives_for, fates_of
from .story import Scene

log = logging.getLogger(__name__)

#: Largest prompt template file read.
MAX_PROMPT_BYTES = 64 * 1024


@dataclass(frozen=True)
class Rewrite:
    """A rewritten scene: its text, the directives it was written for, what made it and whether
    that was an AI."""

    scene: str
    text: str
    directives: Mapping[str, Any]
    by: str
    ai_generated: bool
    notes: Mapping[str, Any] = field(default_factory=dict)


def scene_context(scene: Scene, context: Mapping[str, Any], cast: Sequence[str] = ()) -> dict[str, Any]:
    """The context a rewriter gets for ``scene``: the director's ``target_intensity`` and the
    ``directives`` it implies for this scene, the story state *after the scene's own effects*
    (``facts``), who is dead then (``dead``) and who dies in it (``dying``), the allowed ``cast``
    and the scene's ``exits``."""
    facts = dict(scene.state) if scene.state else dict(context.get("facts") or {})
    fates = fates_of(scene)
    dying = sorted(fated_dead(fates))
    target = context.get("target_intensity")
    return {**dict(context), "facts": facts, "dying": dying,
            "dead": sorted(dead_characters(facts) | set(dying)),
            "directives": dict(context.get("directives") or directives_for(scene, target)),
            "cast": tuple(cast) or tuple(context.get("cast") or ()), "exits": list(scene.next)}


class TemplateRewriter:
    """Deterministic, offline rewriting to the director's directives (see the module docstring)."""

    name = "template"
    background = False

    def rewrite(self, scene: Scene, context: Mapping[str, Any]) -> Rewrite | None:
        d = dict(context.get("directives") or directives_for(scene, context.get("target_intensity")))
        direction = f"[pacing {d['pacing']}, music {d['music_intensity']:.2f}, stakes {d['stakes']}]"
        return Rewrite(scene.id, f"{direction} {scene.text}".strip(), d, self.name, False,
                       {"target_intensity": context.get("target_intensity")})


SYSTEM_PROMPT = (
    "You rewrite one scene of a branching film for a viewer. Reply with one JSON object only, matching the "
    "schema: text (prose, the scene itself), directives (copy the directives you are given, unchanged), cast "
    "(who appears), exits (the scene ids it may lead to, from the list given). Write the text to suit the "
    "directives (pacing, stakes, music). Keep every required beat word for word. Use only the allowed cast; "
    "dead characters stay dead: they may only be remembered, and anyone listed as dying in this scene dies "
    "in it, as written. Add no new named characters. The text is prose for the viewer: no instructions, no "
    "notes, no words to the viewer or about the rewrite, no markup."
)


def read_prompt(path: str | Path) -> str:
    """A system prompt from a text file (UTF-8, at most 64 KB); :class:`ConfigError` naming the file."""
    p = Path(path)
    try:
        raw = read_bounded(p, MAX_PROMPT_BYTES)
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read the prompt template: {exc.strerror or exc}") from None
    if raw is None:
        raise ConfigError(f"{p}: a prompt template is at most {MAX_PROMPT_BYTES // 1024} KB")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{p}: the prompt template is not UTF-8 text (byte {exc.start})") from None
    if not text.strip():
        raise ConfigError(f"{p}: the prompt template is empty")
    return text


class LlmRewriter:
    """Rewrites with an OpenAI-compatible endpoint, checks the reply, retries once, else gives up.
    ``system_prompt`` replaces :data:`SYSTEM_PROMPT` (the request itself is always the scene as JSON)."""

    background = True

    def __init__(self, client: LlmClient, attempts: int = 2, system_prompt: str | None = None) -> None:
        self.client = client
        self.attempts = max(1, int(attempts))
        self.system_prompt = system_prompt or SYSTEM_PROMPT
        self.name = f"llm:{client.model}"
        self.rejected = 0
        self.failed = 0

    def messages(self, scene: Scene, context: Mapping[str, Any]) -> list[dict[str, str]]:
        ctx = context if "directives" in context else scene_context(scene, context)
        request = {
            "scene": {"id": scene.id, "title": scene.title, "text": scene.text, "tone": scene.tone,
                      "palette": scene.palette, "intensity": scene.intensity},
            "target_intensity": ctx.get("target_intensity"),
            "directives": ctx["directives"],
            "required_beats": required_beats(scene),
            "story_facts": ctx["facts"],
            "dead_characters": list(ctx["dead"]),
            "dies_in_this_scene": list(ctx["dying"]),
            "allowed_cast": sorted({c for c in (*ctx.get("cast", ()), *scene.cast) if isinstance(c, str)}),
            "exits": list(ctx.get("exits") or ()),
        }
        return [{"role": "system", "content": self.system_prompt},
                {"role": "user", "content": json.dumps(request, ensure_ascii=False, default=str)}]

    def rewrite(self, scene: Scene, context: Mapping[str, Any]) -> Rewrite | None:
        ctx = context if "directives" in context else scene_context(scene, context)
        messages = self.messages(scene, ctx)
        allowed = set(ctx.get("cast") or ()) | set(scene.cast)
        problems: list[str] = []
        for attempt in range(1, self.attempts + 1):
            try:
                content = self.client.complete(messages, REWRITE_SCHEMA)
            except LlmError as exc:
                self.failed += 1
                log.warning("rewrite of %r failed: %s; the authored scene plays", scene.id, exc)
                return None
            try:
                reply = parse_reply(content)
                problems = check_rewrite(reply, scene, allowed, ctx.get("exits") or (), ctx["facts"],
                                         directives=ctx["directives"], dying=ctx["dying"], dead=ctx["dead"])
            except ReplyError as exc:
                reply, problems = None, [str(exc)]
            if not problems:
                return Rewrite(scene.id, reply["text"], dict(ctx["directives"]), self.name, True,
                               {"attempts": attempt, "model": self.client.model})
            log.info("rewrite of %r rejected (attempt %d): %s", scene.id, attempt, "; ".join(problems))
            messages = messages + [{"role": "assistant", "content": content[:8000]},
                                   {"role": "user", "content": "Your reply was rejected: " + "; ".join(problems)
                                    + ". Reply again with one corrected JSON object."}]
        self.rejected += 1
        log.warning("rewrite of %r rejected %d times (%s); the authored scene plays", scene.id, self.attempts,
                    "; ".join(problems))
        return None

    def close(self) -> None:
        self.client.close()


class _DaemonPool:
    """A few daemon worker threads: unlike ThreadPoolExecutor's, they never hold up the
    interpreter's exit while a slow server is being waited for."""

    def __init__(self, workers: int, name: str) -> None:
        self._queue: queue.Queue = queue.Queue()
        self._threads = [threading.Thread(target=self._work, name=f"{name}-{i}", daemon=True) for i in range(workers)]
        for t in self._threads:
            t.start()

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            future, fn, args = item
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(fn(*args))
            except BaseException as exc:  # noqa: BLE001 - handed to whoever takes the result
                future.set_exception(exc)

    def submit(self, fn, *args) -> Future:
        future: Future = Future()
        self._queue.put((future, fn, args))
        return future

    def shutdown(self) -> None:
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is not None:
                item[0].cancel()
        for _ in self._threads:
            self._queue.put(None)


class RewriteService:
    """Prepares rewrites ahead and never waits for them (see the module docstring).

    ``prepare(key, scenes, context)`` starts rewriting (background rewriters) each scene that may
    come next; ``take(key, scene, context)`` returns the rewrite for the scene that starts now
    with the decision's ``context`` (its ``target_intensity``), if one is ready and was written
    for the same directives, else ``None``. ``cast`` is the story's allowed cast.
    """

    def __init__(self, rewriter: Any, cast: Sequence[str] = (), workers: int = 2) -> None:
        self.rewriter = rewriter
        self.cast = tuple(c for c in cast if isinstance(c, str))
        self.background = bool(getattr(rewriter, "background", False))
        self.name = str(getattr(rewriter, "name", type(rewriter).__name__))
        self._pool = _DaemonPool(workers, "rewrite") if self.background else None
        if self._pool is not None:  # a service nobody closed still lets its threads go
            weakref.finalize(self, self._pool.shutdown)
        self._jobs: dict[tuple[int, str], Future | Rewrite | None] = {}
        self._lock = threading.Lock()
        self.late = 0
        self.stale = 0
        self.used = 0
        self.errors = 0

    def _run(self, scene: Scene, context: Mapping[str, Any]) -> Rewrite | None:
        try:
            return self.rewriter.rewrite(scene, context)
        except Exception:  # noqa: BLE001 - a broken rewriter means the authored scene plays
            self.errors += 1
            log.exception("rewriter %r failed on %r", self.name, scene.id)
            return None

    def prepare(self, key: int, scenes: Sequence[Scene], context: Mapping[str, Any]) -> None:
        """Start rewriting ``scenes`` (the options after the scene starting now, decision ``key - 1``)."""
        with self._lock:
            for old in [k for k in self._jobs if k[0] < key or (k[0] == key and self.background)]:
                job = self._jobs.pop(old)
                if isinstance(job, Future):
                    job.cancel()
        if self._pool is None:
            return  # made in take(), from the final decision
        for scene in scenes:
            job = self._pool.submit(self._run, scene, scene_context(scene, context, self.cast))
            with self._lock:
                self._jobs[(key, scene.id)] = job

    def take(self, key: int, scene: Scene, context: Mapping[str, Any] | None = None) -> Rewrite | None:
        """The rewrite of ``scene`` for decision ``key``, written for the directives the decision's
        ``context`` implies; ``None`` (the authored text plays) when there is none ready."""
        ctx = scene_context(scene, context or {}, self.cast)
        if self._pool is None:
            rewrite = self._run(scene, ctx)
        else:
            with self._lock:
                job = self._jobs.pop((key, scene.id), None)
            if isinstance(job, Future):
                if not job.done():
                    job.cancel()
                    self.late += 1
                    return None
                job = job.result()
            rewrite = job
            if rewrite is not None and dict(rewrite.directives) != ctx["directives"]:
                self.stale += 1
                log.info("rewrite of %r was written for %s; the director now asks for %s: not used", scene.id,
                         dict(rewrite.directives), ctx["directives"])
                return None
        if rewrite is not None:
            self.used += 1
        return rewrite

    def counters(self) -> dict[str, int]:
        return {"used": self.used, "late": self.late, "stale": self.stale, "errors": self.errors,
                "rejected": int(getattr(self.rewriter, "rejected", 0)), "failed": int(getattr(self.rewriter, "failed", 0))}

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
        close = getattr(self.rewriter, "close", None)
        if callable(close):
            close()
