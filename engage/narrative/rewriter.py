"""Rewriters: the next scene's text and directives, tuned to the director's target.

* :class:`TemplateRewriter` (the default) is deterministic and offline: the directives follow
  the target intensity (pacing, music intensity, stakes) and the text gets a stage direction
  saying so; the authored words are kept.
* :class:`LlmRewriter` asks any OpenAI-compatible chat-completions endpoint for JSON matching
  :data:`~engage.narrative.canon.REWRITE_SCHEMA`, giving it the authored scene, the beats it
  must keep, the story facts and the allowed cast. The reply is checked
  (:func:`~engage.narrative.canon.check_rewrite`); on problems it asks once more with the
  problems listed; otherwise it gives up and the authored scene plays. Every accepted rewrite
  is labelled ``ai_generated`` with the model's name (``rewritten_by = "llm:<model>"``).
* :class:`RewriteService` prepares rewrites of the scenes that may come next *while the
  current scene plays* (on a worker thread for slow rewriters) and hands the controller only
  what is ready when the scene starts: playback is never stalled; a late rewrite is dropped and
  counted.

>>> from engage.narrative.story import Scene
>>> s = Scene("tea", "Tea", "Tea with Tomas.", 0.2, "calm", 30.0, "amber", ("Lena", "Tomas"))
>>> r = TemplateRewriter().rewrite(s, {"target_intensity": 0.8})
>>> r.text, r.directives["pacing"], r.ai_generated
('[pacing fast, music 0.80, stakes high] Tea with Tomas.', 'fast', False)
"""

from __future__ import annotations

import json
import logging
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from .canon import REWRITE_SCHEMA, check_rewrite, dead_characters, required_beats
from .llm import LlmClient, LlmError
from .plan import directives_for
from .story import Scene

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Rewrite:
    """A rewritten scene: its text, directives, what made it and whether that was an AI."""

    scene: str
    text: str
    directives: Mapping[str, Any]
    by: str
    ai_generated: bool
    notes: Mapping[str, Any] = field(default_factory=dict)


def _directives_for_target(scene: Scene, target: float | None) -> dict[str, Any]:
    if target is None:
        return directives_for(scene)
    from dataclasses import replace

    d = directives_for(replace(scene, intensity=float(min(1.0, max(0.0, target)))))
    d["palette"] = scene.palette
    return d


class TemplateRewriter:
    """Deterministic, offline rewriting to the director's target (see the module docstring)."""

    name = "template"
    background = False

    def rewrite(self, scene: Scene, context: Mapping[str, Any]) -> Rewrite | None:
        target = context.get("target_intensity")
        d = _directives_for_target(scene, target)
        direction = f"[pacing {d['pacing']}, music {d['music_intensity']:.2f}, stakes {d['stakes']}]"
        return Rewrite(scene.id, f"{direction} {scene.text}".strip(), d, self.name, False,
                       {"target_intensity": target})


SYSTEM_PROMPT = (
    "You rewrite one scene of a branching film to a target intensity. Reply with one JSON object only, "
    "matching the schema: text (prose, the scene itself), directives (pacing, palette, music_intensity, "
    "stakes), cast (who appears), exits (the scene ids it may lead to, from the list given). Keep every "
    "required beat word for word. Use only the allowed cast; dead characters stay dead; add no new named "
    "characters. The text is prose for the viewer: no instructions, no notes, no markup."
)


class LlmRewriter:
    """Rewrites with an OpenAI-compatible endpoint, checks the reply, retries once, else gives up."""

    background = True

    def __init__(self, client: LlmClient, attempts: int = 2) -> None:
        self.client = client
        self.attempts = max(1, int(attempts))
        self.name = f"llm:{client.model}"
        self.rejected = 0
        self.failed = 0

    def messages(self, scene: Scene, context: Mapping[str, Any]) -> list[dict[str, str]]:
        facts = dict(context.get("facts") or {})
        request = {
            "scene": {"id": scene.id, "title": scene.title, "text": scene.text, "tone": scene.tone,
                      "palette": scene.palette, "intensity": scene.intensity},
            "target_intensity": context.get("target_intensity"),
            "required_beats": required_beats(scene),
            "story_facts": facts,
            "dead_characters": sorted(dead_characters(facts)),
            "allowed_cast": sorted(set(context.get("cast") or ()) | set(scene.cast)),
            "exits": list(context.get("exits") or ()),
        }
        return [{"role": "system", "content": SYSTEM_PROMPT},
                {"role": "user", "content": json.dumps(request, ensure_ascii=False, default=str)}]

    def rewrite(self, scene: Scene, context: Mapping[str, Any]) -> Rewrite | None:
        messages = self.messages(scene, context)
        allowed = set(context.get("cast") or ()) | set(scene.cast)
        exits = list(context.get("exits") or ())
        problems: list[str] = []
        for attempt in range(1, self.attempts + 1):
            try:
                content = self.client.complete(messages, REWRITE_SCHEMA)
            except LlmError as exc:
                self.failed += 1
                log.warning("rewrite of %r failed: %s; the authored scene plays", scene.id, exc)
                return None
            try:
                reply = json.loads(content)
                problems = check_rewrite(reply, scene, allowed, exits, context.get("facts") or {})
            except ValueError as exc:
                reply, problems = None, [f"reply is not JSON ({exc})"]
            if not problems:
                d = dict(reply["directives"])
                return Rewrite(scene.id, reply["text"], d, self.name, True,
                               {"attempts": attempt, "model": self.client.model})
            log.info("rewrite of %r rejected (attempt %d): %s", scene.id, attempt, "; ".join(problems))
            messages = messages + [{"role": "assistant", "content": content[:8000]},
                                   {"role": "user", "content": "Your reply was rejected: " + "; ".join(problems)
                                    + ". Reply again with one corrected JSON object."}]
        self.rejected += 1
        log.warning("rewrite of %r rejected twice (%s); the authored scene plays", scene.id, "; ".join(problems))
        return None


class RewriteService:
    """Prepares rewrites ahead and never waits for them (see the module docstring).

    ``prepare(key, scenes, context)`` starts rewriting each scene that may come next;
    ``take(key, scene)`` returns the rewrite if it is ready now, else ``None`` (counted in
    ``late``). ``cast`` is the story's allowed cast, handed to the rewriter with the context.
    """

    def __init__(self, rewriter: Any, cast: Sequence[str] = (), workers: int = 2) -> None:
        self.rewriter = rewriter
        self.cast = tuple(cast)
        self.background = bool(getattr(rewriter, "background", False))
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="rewrite") if self.background else None
        self._jobs: dict[tuple[int, str], Future | Rewrite | None] = {}
        self._lock = threading.Lock()
        self.late = 0
        self.used = 0
        self.errors = 0

    def _run(self, scene: Scene, context: Mapping[str, Any]) -> Rewrite | None:
        try:
            return self.rewriter.rewrite(scene, context)
        except Exception:  # noqa: BLE001 - a broken rewriter means the authored scene plays
            self.errors += 1
            log.exception("rewriter %r failed on %r", getattr(self.rewriter, "name", self.rewriter), scene.id)
            return None

    def prepare(self, key: int, scenes: Sequence[Scene], context: Mapping[str, Any]) -> None:
        with self._lock:
            for old in [k for k in self._jobs if k[0] < key]:
                job = self._jobs.pop(old)
                if isinstance(job, Future):
                    job.cancel()
        for scene in scenes:
            ctx = {**dict(context), "cast": self.cast, "exits": list(scene.next)}
            if self._pool is not None:
                job: Future | Rewrite | None = self._pool.submit(self._run, scene, ctx)
            else:
                job = self._run(scene, ctx)
            with self._lock:
                self._jobs[(key, scene.id)] = job

    def take(self, key: int, scene: Scene) -> Rewrite | None:
        with self._lock:
            job = self._jobs.pop((key, scene.id), None)
        if isinstance(job, Future):
            if not job.done():
                job.cancel()
                self.late += 1
                return None
            job = job.result()
        if job is not None:
            self.used += 1
        return job

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
