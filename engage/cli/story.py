"""``engage story check|play|compare``: validate a story, play it with simulated viewers, compare policies."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from engage.core.errors import EngageError

from .common import FORMATTER
from .narrative_options import EPILOG, add_narrative_arguments, narrative_config

ORDER = 30


def register(sub) -> None:
    s = sub.add_parser(
        "story", formatter_class=FORMATTER, help="check a story, play it with simulated viewers, compare policies",
        description="Stories are compiled ink JSON (.ink.json, from inklecate or `npx inkjs-compiler -o\n"
                    "story.ink.json story.ink`), TOML or YAML story graphs. Without FILE, the sample\n"
                    "ink story 'The Last Broadcast' is used.",
        epilog="examples:\n  engage story check mystory.ink.json\n"
               "  engage story play --simulate --seed 3\n"
               "  engage story play TheIntercept.ink.json --simulate --viewers 20\n"
               "  engage story compare --viewers 100 --jobs 2")
    ssub = s.add_subparsers(dest="story_command", metavar="ACTION")

    c = ssub.add_parser("check", formatter_class=FORMATTER, help="list a story's problems; exit 1 on any error",
                        description="Loads the story without executing anything it contains and lists every\n"
                                    "problem: errors (unplayable: not valid TOML/YAML/JSON, YAML with custom tags,\n"
                                    "unsupported ink version, missing targets, cycles with no exit, over 5 MB, no\n"
                                    "ending reachable) and warnings (unreachable scenes, bad tags).",
                        epilog="examples:\n  engage story check story.ink.json\n  engage story check night_train.toml")
    c.add_argument("file", help="the story file (.ink.json, .toml, .yaml)")
    c.add_argument("--overlay", metavar="FILE.toml", help="tags for the knots of a compiled ink story (checked too)")
    c.set_defaults(func=run_check)

    p = ssub.add_parser("play", formatter_class=FORMATTER, help="play a story to an ending with simulated viewers",
                        description="Each simulated viewer (ECG, EDA, face through the whole pipeline) watches the\n"
                                    "story on a virtual clock; the controller chooses at every choice point and\n"
                                    "every decision is printed with its reason and probability.",
                        epilog="examples:\n  engage story play --simulate\n"
                               "  engage story play TheIntercept.ink.json --simulate --seed 4 --viewers 20\n"
                               "  engage story play --simulate --policy thompson --scenes-out out/scenes.jsonl\n"
                               "  engage story play film.ink.json --simulate --rewriter llm --llm-url "
                               "http://127.0.0.1:11434/v1 \\\n      --osc 127.0.0.1:9000 --ws 127.0.0.1:8766\n\n"
                               + EPILOG)
    p.add_argument("file", nargs="?", help="the story file (default: the sample ink story)")
    p.add_argument("--simulate", action="store_true", help="watch with simulated viewers (the only mode without sensors)")
    p.add_argument("--seed", type=int, default=0, help="first viewer's seed (default: 0)")
    p.add_argument("--viewers", type=int, default=1, help="how many simulated viewers, seeds seed..seed+N-1 (default: 1)")
    p.add_argument("--policy", default="director", choices=["director", "thompson", "fixed"],
                   help="director (pacing director, greedy), thompson (with Thompson sampling) or fixed (authored path)")
    p.add_argument("--rewrite", choices=["none", "template"], default=None, help=argparse.SUPPRESS)  # old name
    p.add_argument("--quiet", action="store_true", help="one summary line per viewer, no decisions")
    add_narrative_arguments(p, story=False)
    p.set_defaults(func=run_play)

    m = ssub.add_parser("compare", formatter_class=FORMATTER, help="adaptive policy vs the fixed authored path",
                        description="Runs N simulated viewers (varied traits) through the story twice, under the\n"
                                    "adaptive policy and the fixed authored path, and prints time bored, time in the\n"
                                    "target arousal band and plot changes, with the paired difference.",
                        epilog="examples:\n  engage story compare --viewers 100 --jobs 2\n"
                               "  engage story compare night_train.toml --viewers 20 --policy thompson --json\n"
                               "  engage story compare --group 4 --viewers 100 --jobs 2   # 25 audiences of 4: the group\n"
                               "      policies (aggregate, least-engaged, majority) vs the fixed path: the group's and\n"
                               "      the worst viewer's time bored, plot changes, paired intervals\n"
                               "  engage story compare TheIntercept.ink.json --overlay intercept.toml --viewers 100")
    m.add_argument("file", nargs="?", help="the story file (default: the sample ink story)")
    m.add_argument("--viewers", type=int, default=100, help="number of simulated viewers (default: 100)")
    m.add_argument("--policy", default="director", choices=["director", "thompson"], help="the adaptive policy")
    m.add_argument("--jobs", type=int, default=1, help="parallel processes (default: 1)")
    m.add_argument("--seed", type=int, default=0, help="first viewer's seed (default: 0)")
    m.add_argument("--json", action="store_true", help="print the per-viewer results as JSON too")
    m.add_argument("--group", type=int, metavar="N", help="viewers watch together in audiences of N: compares the "
                   "group policies (one film for each audience) instead of --policy")
    m.add_argument("--overlay", metavar="FILE.toml", help="tags for the knots of a compiled ink story, by knot name")
    m.set_defaults(func=run_compare)
    s.set_defaults(func=lambda args: (s.print_help(), 2)[1])


def run_check(args: argparse.Namespace) -> int:
    from engage.narrative.evaluation import validate_story_file

    path = Path(args.file)
    errors, warnings = validate_story_file(path, overlay=args.overlay)
    for e in errors:
        print(f"{path}: error: {e}")
    for w in warnings:
        print(f"{path}: warning: {w}")
    if not errors:
        print(f"{path}: ok ({len(warnings)} warning{'s' if len(warnings) != 1 else ''})")
    return 1 if errors else 0


def run_play(args: argparse.Namespace) -> int:
    from engage.narrative.config import story_cast
    from engage.narrative.evaluation import run_viewer
    from engage.narrative.plan import ScenePlanWriter
    from engage.narrative.publish import open_outputs
    from engage.narrative.story import StoryError

    if not args.simulate:
        raise EngageError("story play needs --simulate (live viewing runs through `engage` sessions with sensors)")
    if args.viewers < 1:
        raise EngageError(f"--viewers must be >= 1, got {args.viewers}")
    if args.rewrite is not None and args.rewriter is None:
        args.rewriter = args.rewrite
    args.story = args.file
    cfg = narrative_config(args)
    player = cfg.open_story(args.file) if args.file else None  # a bad story is a one-line error
    title = getattr(player, "title", "The Last Broadcast")
    outputs = open_outputs(cfg.osc, cfg.ws, cfg.ws_wait_s)
    for o in outputs:
        where = getattr(o, "url", None) or f"osc://{o.host}:{o.port}"
        print(f"engage story play: sending plans to {where}", file=sys.stderr)
    writer = ScenePlanWriter(cfg.scenes_out, append=False) if cfg.scenes_out else None
    failed = 0
    try:
        for seed in range(args.seed, args.seed + args.viewers):
            rewriter = cfg.make_rewriter(story_cast(player) if player is not None else ())
            try:
                r = run_viewer(args.file, args.policy, seed, rewriter=rewriter, overlay=cfg.overlay,
                               outputs=outputs)
            except StoryError as exc:
                print(f"viewer {seed}: error: {exc}")
                failed += 1
                continue
            finally:
                if rewriter is not None:
                    rewriter.close()
            if not args.quiet:
                print(f"-- viewer {seed} ({args.policy}) watching {title}; {cfg.describe()}")
                for p in r.plans:
                    t = p.timestamp - r.plans[0].timestamp
                    label = f" [{p.rewritten_by}]" if p.rewritten else ""
                    print(f"  {int(t // 60):02d}:{int(t % 60):02d}  {p.scene:<22} p={p.probability:.2f}  "
                          f"{p.reason}{label}")
            if writer is not None:
                for p in r.plans:
                    writer(p)
            status = f"ended at {r.ending!r}" if r.ended else "did NOT reach an ending"
            rewritten = sum(p.rewritten for p in r.plans)
            print(f"viewer {seed}: {status} after {r.scenes} scenes ({rewritten} rewritten), {r.watched_s / 60:.1f} "
                  f"min; bored {100 * r.bored_frac:.0f} % of the time, {r.plot_changes} plot changes")
            failed += 0 if r.ended else 1
    finally:
        if writer is not None:
            writer.close()
        for o in outputs:
            o.close()
    print(f"{args.viewers - failed}/{args.viewers} viewers reached an ending")
    return 1 if failed else 0


def run_compare(args: argparse.Namespace) -> int:
    from engage.core.progress import Progress

    from engage.narrative.evaluation import compare, format_table, paired_difference
    from engage.narrative.story import StoryError

    if args.viewers < 1:
        raise EngageError(f"--viewers must be >= 1, got {args.viewers}")
    if args.jobs < 1:
        raise EngageError(f"--jobs must be >= 1, got {args.jobs}")
    if args.group is not None:
        return _run_group_compare(args)
    bar = Progress(2 * args.viewers, "compare", "run")
    try:
        results = compare(args.file, args.viewers, args.policy, jobs=args.jobs, first_seed=args.seed,
                          on_result=lambda r: bar.update(1), overlay=args.overlay)
    except StoryError as exc:
        raise EngageError(str(exc)) from None
    finally:
        bar.close()
    print(format_table(results, args.policy))
    if args.json:
        print(json.dumps(results, sort_keys=True))
    d = paired_difference(results, args.policy)
    band = paired_difference(results, args.policy, "band_frac")
    print(json.dumps({"viewers": args.viewers, "policy": args.policy, "bored_frac_adaptive": round(d["adaptive"], 4),
                      "bored_frac_fixed": round(d["fixed"], 4), "diff": round(d["diff"], 4),
                      "ci": [round(d["ci_low"], 4), round(d["ci_high"], 4)], "p": d["p"],
                      "band_frac_adaptive": round(band["adaptive"], 4), "band_frac_fixed": round(band["fixed"], 4),
                      "band_diff": round(band["diff"], 4), "band_ci": [round(band["ci_low"], 4),
                                                                      round(band["ci_high"], 4)], "band_p": band["p"]}))
    return 0


def _run_group_compare(args: argparse.Namespace) -> int:
    import numpy as np
    from engage.core.progress import Progress

    from engage.narrative.evaluation import paired_difference
    from engage.narrative.group_evaluation import GROUP_POLICIES_COMPARED, compare_groups, format_group_table
    from engage.narrative.story import StoryError

    if args.group < 1:
        raise EngageError(f"--group must be >= 1, got {args.group}")
    if args.overlay:
        raise EngageError("--overlay is not supported with --group yet: compare the group policies on a story with "
                          "its tags written in, or without --group")
    if args.viewers < args.group:
        raise EngageError(f"--viewers {args.viewers} is fewer than one audience of --group {args.group}")
    groups = args.viewers // args.group
    if groups * args.group != args.viewers:
        print(f"engage story compare: {args.viewers} viewers make {groups} audiences of {args.group} "
              f"({groups * args.group} viewers)", file=sys.stderr)
    runs = groups * (len(GROUP_POLICIES_COMPARED) + 1)
    bar = Progress(runs, "compare", "run")
    try:
        results = compare_groups(args.file, groups, args.group, jobs=args.jobs, first_seed=args.seed,
                                 on_result=lambda r: bar.update(1))
    except StoryError as exc:
        raise EngageError(str(exc)) from None
    finally:
        bar.close()
    print(format_group_table(results))
    if args.json:
        print(json.dumps(results, sort_keys=True))
    summary: dict = {"viewers": groups * args.group, "group": args.group, "groups": groups, "policies": {}}
    for name in results:
        runs_ = results[name]
        entry = {"bored_frac": round(float(np.mean([r["bored_frac"] for r in runs_])), 4),
                 "worst_bored_frac": round(float(np.mean([r["worst_bored_frac"] for r in runs_])), 4),
                 "plot_changes": round(float(np.mean([r["plot_changes"] for r in runs_])), 3)}
        if name != "fixed":
            for key in ("bored_frac", "worst_bored_frac"):
                d = paired_difference(results, name, key)
                entry[f"{key}_diff"] = {k: (round(d[k], 4) if np.isfinite(d[k]) else None)
                                        for k in ("diff", "ci_low", "ci_high", "p")}
        summary["policies"][name] = entry
    print(json.dumps(summary))
    return 0