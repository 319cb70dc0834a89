"""Fuzz every parser of outside input, long: unhandled exceptions, hangs and memory per parser.

    python benchmarks/fuzz.py                      # 100,000 cases over all parsers (about 15-30 min on 2 cores)
    python benchmarks/fuzz.py --cases 2000 --targets xdf,csv
    python benchmarks/fuzz.py --list

The parsers, their seed inputs and the mutations are those of ``tests/test_fuzz.py``
(``tests/support/fuzz_targets.py``). A case passes when the parser accepts the input or refuses it with
an ``EngageError``; any other exception is *unhandled*. Each parser runs in its own worker process; the
parent kills a worker whose case runs longer than ``--timeout`` seconds (a *hang*) or whose memory grows
more than ``--memory-mb`` over its resting size (*over memory*), records the case and starts a new worker
from the next case. The last table row sums the parsers; failing cases are written to ``--out`` to
replay with ``--replay FILE``.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import sys
import tempfile
import time
import traceback
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "support"))

import fuzz_targets as F  # noqa: E402
from _proc import tree_rss_mb  # noqa: E402


def _rss_mb(pid: int) -> float:
    """The worker's memory with its children's: the ink runtime runs a story in a process of its own."""
    return tree_rss_mb(pid) or 0.0


def _worker(name: str, n: int, seed: int, start: int, conn) -> None:
    """Runs cases ``start..n-1`` of ``name``; tells the parent before and after each one."""
    import logging
    import resource
    import warnings

    from engage.core.errors import EngageError

    logging.disable(logging.CRITICAL)  # parsers log what they refuse; the table counts it
    warnings.simplefilter("ignore")

    # a hard ceiling far above the budget, so that a runaway case fails here instead of taking the machine down
    soft, hard = resource.getrlimit(resource.RLIMIT_DATA)
    resource.setrlimit(resource.RLIMIT_DATA, (min(8 << 30, hard if hard > 0 else 8 << 30), hard))
    target = F.TARGETS[name]
    cases = F.cases(target, n, seed)
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(start, n):
            conn.send(("start", i))
            folder = Path(tmp) / str(i)
            folder.mkdir()
            try:
                target.run(cases[i], folder)
                outcome = ("ok", i, "")
            except EngageError:
                outcome = ("refused", i, "")
            except BaseException as exc:  # noqa: BLE001 - what we are here to find
                where = traceback.extract_tb(exc.__traceback__)[-1]
                outcome = ("unhandled", i, f"{type(exc).__name__} at {Path(where.filename).name}:{where.lineno}: "
                                           f"{str(exc)[:160]}")
            conn.send(outcome)
    conn.send(("done", n))


def fuzz(name: str, n: int, seed: int, timeout: float, memory_mb: float) -> dict:
    """Runs ``n`` cases of one parser under the watchdog; returns its counts, peak memory and failures."""
    ctx = mp.get_context("fork")
    counts: Counter = Counter()
    failures: list[tuple[str, int, str]] = []
    peak_over = 0.0
    start, t0 = 0, time.monotonic()
    while start < n:
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=_worker, args=(name, n, seed, start, child), daemon=True)
        proc.start()
        child.close()
        base = None
        current, began = None, time.monotonic()
        next_start = n
        while True:
            if parent.poll(0.05):
                try:
                    kind, i, detail = (*parent.recv(), "")[:3]
                except EOFError:
                    kind, i, detail = "crash", current if current is not None else start, "worker exited"
            else:
                kind, i, detail = None, None, ""
            rss = _rss_mb(proc.pid)
            if kind == "start":
                current, began = i, time.monotonic()
                if base is None:
                    base = rss
                continue
            if kind in ("ok", "refused", "unhandled"):
                counts[kind] += 1
                if kind == "unhandled":
                    failures.append((kind, i, detail))
                current = None
                continue
            if kind == "done":
                break
            if base is not None:
                peak_over = max(peak_over, rss - base)
            if kind == "crash" or (not proc.is_alive() and kind is None):
                i = current if current is not None else start
                counts["unhandled"] += 1
                failures.append(("crash", i, f"worker died (exit code {proc.exitcode})"))
                next_start = i + 1
                break
            if current is not None and time.monotonic() - began > timeout:
                counts["hang"] += 1
                failures.append(("hang", current, f"over {timeout:g} s"))
                next_start = current + 1
                break
            if current is not None and base is not None and rss - base > memory_mb:
                counts["over memory"] += 1
                failures.append(("over memory", current, f"{rss - base:.0f} MB over the worker's resting size"))
                next_start = current + 1
                break
        if proc.is_alive():
            proc.kill()
        proc.join()
        start = next_start if next_start < n else n
    return {"name": name, "cases": n, "counts": counts, "failures": failures, "peak_over_mb": peak_over,
            "seconds": time.monotonic() - t0}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cases", type=int, default=None, help="cases per parser (default: --total split evenly)")
    p.add_argument("--total", type=int, default=100_000, help="cases over all parsers (default: 100000)")
    p.add_argument("--targets", default="", help="comma-separated parser names (default: all; --list shows them)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--timeout", type=float, default=5.0, help="seconds a case may take (default: 5)")
    p.add_argument("--memory-mb", type=float, default=500.0, help="memory a case may add (default: 500 MB)")
    p.add_argument("--out", default="out/fuzz", help="folder for failing cases (default: out/fuzz)")
    p.add_argument("--replay", help="run one saved case file (its name says the parser) and show the traceback")
    p.add_argument("--list", action="store_true", help="list the parsers and exit")
    args = p.parse_args(argv)
    if args.list:
        print("\n".join(F.TARGETS))
        return 0
    if args.replay:
        name = Path(args.replay).name.split("--")[0]
        from engage.core.errors import EngageError

        with tempfile.TemporaryDirectory() as tmp:
            try:
                F.TARGETS[name].run(Path(args.replay).read_bytes(), Path(tmp))
            except EngageError as exc:
                print(f"refused: {exc}")
                return 0
        print("accepted")
        return 0
    names = [t for t in args.targets.split(",") if t] or list(F.TARGETS)
    unknown = [t for t in names if t not in F.TARGETS]
    if unknown:
        p.error(f"unknown parser(s) {', '.join(unknown)}; --list shows them")
    per = args.cases or max(1, args.total // len(names))
    out = Path(args.out)
    print(f"{'parser':<12} {'cases':>7} {'accepted':>8} {'refused':>8} {'unhandled':>9} {'hangs':>6} "
          f"{'over mem':>8} {'peak MB':>8} {'s':>6}", flush=True)
    total: Counter = Counter()
    worst_mem, all_failures = 0.0, []
    for name in names:
        r = fuzz(name, per, args.seed, args.timeout, args.memory_mb)
        c = r["counts"]
        total.update(c)
        total["cases"] += r["cases"]
        worst_mem = max(worst_mem, r["peak_over_mb"])
        print(f"{name:<12} {r['cases']:>7} {c['ok']:>8} {c['refused']:>8} {c['unhandled']:>9} {c['hang']:>6} "
              f"{c['over memory']:>8} {r['peak_over_mb']:>8.0f} {r['seconds']:>6.0f}", flush=True)
        if r["failures"]:
            out.mkdir(parents=True, exist_ok=True)
            cases = F.cases(F.TARGETS[name], per, args.seed)
            for kind, i, detail in r["failures"]:
                path = out / f"{name}--{i}.bin"
                path.write_bytes(cases[i])
                all_failures.append(f"  {name} case {i}: {kind}: {detail} ({path})")
    print(f"{'all':<12} {total['cases']:>7} {total['ok']:>8} {total['refused']:>8} {total['unhandled']:>9} "
          f"{total['hang']:>6} {total['over memory']:>8} {worst_mem:>8.0f}")
    if all_failures:
        print("\nfailing cases (replay one with --replay FILE):")
        print("\n".join(all_failures[:100]))
    return 1 if all_failures else 0


if __name__ == "__main__":
    sys.exit(main())
