"""Benchmark: decision latency of the narrative controller, without the LLM.

A decision is everything the controller does when a scene ends: the policy's choice (director
update, limits, Thompson sampling), moving the story player on (ink through bink, or the story
graph), the template rewrite when asked, the scene plan (writer's tags, fates, upcoming options)
and its JSON line; with a background (LLM) rewriter also peeking at every option that may come
next. Each configuration plays its story over and over on a virtual clock with a viewer whose
boredom and arousal events come and go, and times every decision.

ink runs in a worker process under a memory budget (engage.narrative.inkrun); the same runtime in
this process (``sandbox=False``, no budget) is the peer it replaces, timed in the same run.

    python benchmarks/narrative.py [--decisions 3000]

Prints p50/p99/max wall-clock latency per configuration, and the p99 of the CPU time the
decision used - the decision thread's plus the ink worker's (which, unlike wall time, does not
count waiting for a core on a busy machine); the last line is one JSON object with the worst p99s.
"""

from __future__ import annotations

import argparse
import io
import json
import time

import numpy as np

from engage.core import Event, Processor, Runtime, VirtualClock
from engage.narrative.controller import Controller
from engage.narrative.ink import load_ink, sample_ink_path
from engage.narrative.plan import ScenePlanWriter
from engage.narrative.policy import DirectorPolicy
from engage.narrative.rewriter import RewriteService, TemplateRewriter
from engage.narrative.story import default_story_path, load_story


class MoodSwings(Processor):
    """Publishes boredom and arousal events on a seeded schedule, so every rule gets exercised."""

    name = "mood"

    def __init__(self, seed: int = 0) -> None:
        self.rng = np.random.default_rng(seed)
        self.next_t = 0.0

    def tick(self, now: float):
        if now >= self.next_t:
            kind = ["boredom.onset", "boredom.offset", "arousal.high", "arousal.low"][int(self.rng.integers(4))]
            self.ctx.bus.publish(Event(kind, now, "viewer-1", float(self.rng.uniform(0.3, 1.0))))
            self.next_t = now + float(self.rng.uniform(10, 90))
        return []


class Peeker:
    """A background rewriter that writes nothing: the controller still peeks at every next scene."""

    background = True
    name = "peek-only"

    def rewrite(self, scene, context):
        return None


def run(name: str, make_story, policy, decisions: int, rewrite: str | None) -> dict:
    sink = ScenePlanWriter(io.StringIO())
    rewriter = {None: None, "template": lambda: RewriteService(TemplateRewriter()),
                "prepared": lambda: RewriteService(Peeker())}[rewrite]
    story = make_story()
    c = Controller(story, policy=policy, on_plan=sink, rewriter=rewriter() if rewriter else None)
    worker = getattr(getattr(story, "_run", None), "cpu_s", None) is not None
    times: list[float] = []
    cpu: list[float] = []
    advance = c._advance

    def timed(now: float) -> None:
        t, tc = time.perf_counter(), time.thread_time()
        wc = story._run.cpu_s if worker else 0.0
        advance(now)
        times.append(time.perf_counter() - t)
        cpu.append(time.thread_time() - tc + ((story._run.cpu_s - wc) if worker else 0.0))

    c._advance = timed
    rt = Runtime(VirtualClock(), [], [MoodSwings(), c], step=1.0)
    while len(times) < decisions:
        rt.run(duration=600.0)
    ms = np.array(times[:decisions]) * 1000.0
    cpu_ms = np.array(cpu[:decisions]) * 1000.0
    row = {"config": name, "decisions": int(len(ms)), "p50_ms": round(float(np.percentile(ms, 50)), 4),
           "p99_ms": round(float(np.percentile(ms, 99)), 4), "max_ms": round(float(ms.max()), 4),
           "cpu_p99_ms": round(float(np.percentile(cpu_ms, 99)), 4), "plot_changes": c.plot_changes}
    print(f"{name:<34} n={row['decisions']:>5}  p50 {row['p50_ms']:7.3f} ms  p99 {row['p99_ms']:7.3f} ms  "
          f"max {row['max_ms']:7.3f} ms  (CPU p99 {row['cpu_p99_ms']:.3f} ms)  plot changes {c.plot_changes}")
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--decisions", type=int, default=3000, help="decisions timed per configuration")
    args = ap.parse_args()
    ink = lambda: load_ink(sample_ink_path())  # noqa: E731
    ink_here = lambda: load_ink(sample_ink_path(), sandbox=False)  # noqa: E731
    toml = lambda: load_story(default_story_path())  # noqa: E731
    rows = [
        run("ink / director (greedy)", ink, DirectorPolicy(), args.decisions, None),
        run("ink / director (thompson)", ink, DirectorPolicy(mode="thompson", seed=1), args.decisions, None),
        run("ink / thompson + template rewrite", ink, DirectorPolicy(mode="thompson", seed=2), args.decisions,
            "template"),
        run("ink / thompson + LLM-style peeks", ink, DirectorPolicy(mode="thompson", seed=2), args.decisions,
            "prepared"),
        run("ink in-process (peer) / same", ink_here, DirectorPolicy(mode="thompson", seed=2), args.decisions,
            "prepared"),
        run("toml / director (thompson)", toml, DirectorPolicy(mode="thompson", seed=3), args.decisions, None),
    ]
    worst = max(rows, key=lambda r: r["p99_ms"])
    print(json.dumps({"benchmark": "narrative_decision_latency", "p50_ms": max(r["p50_ms"] for r in rows),
                      "p99_ms": worst["p99_ms"], "worst_config": worst["config"],
                      "cpu_p99_ms": max(r["cpu_p99_ms"] for r in rows), "target_p99_ms": 5.0,
                      "configs": rows}))


if __name__ == "__main__":
    main()
