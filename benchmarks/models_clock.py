"""Benchmark: does the wrist model read the body, or the protocol's clock?

Stress-Predict runs one timetable for everyone (rest, Stroop, rest, interview, rest,
hyperventilation, rest). A model can score well leave-one-subject-out by learning *when* stress
comes - through any feature that drifts over a session - and then fail on a film that puts its
tense scene elsewhere. This benchmark scores each held-out participant's session as recorded and
re-ordered in time (:mod:`engage.datasets.reorder`; every sample keeps its label):

* ``blocks shuffled A/B``: the protocol blocks (cut at label changes) in a random order;
* ``closing rest before``: a copy of the closing rest (15 minutes at most) played before the
  session; the session's own windows are scored, after a different history.

A model that reads physiology scores about the same on all of them; one that learnt the clock
drops. The positive control proves the test can tell: gradient boosting given the minutes since
the session started, trained as recorded, is excellent as recorded and poor re-ordered.

Rows: the shipped pipeline (logistic + boosting ensemble trained on re-ordered copies of the
other participants, ``engage train`` defaults), the same ensemble and the plain logistic model
trained on the sessions as recorded, and the control. The last line is one JSON object.

    python benchmarks/models_clock.py [--root ../shared/data/stress_predict_e4] [--n-jobs 2] [--quick]
"""

from __future__ import annotations

import json
import time
import warnings

import numpy as np

from engage.core import Chunk
from engage.datasets import Labels, Recording, StressPredict
from engage.datasets.reorder import piece_edges, recording_reordered
from engage.models.evaluation import MODEL_FEATURES, _align, labelled_windows
from engage.models.training import ReorderConfig, WindowConfig, extract_windows, loso, report
from engage.models.wrist import WindowSet

from models import stress_predict_args

CLOSING_REST_S = 900.0


def blocks_shuffled(seed: int):
    def transform(rec):
        edges = piece_edges(rec, None)
        return recording_reordered(rec, edges, np.random.default_rng([seed, int(rec.subject[1:])]).permutation(len(edges) - 1))
    return transform


def _closing_rest(rec) -> tuple[float, float]:
    """The session's closing rest block (its last 15 minutes at most)."""
    edges = piece_edges(rec, None)
    grid = np.arange(rec.start, rec.end, 1.0)
    stress = grid[np.nan_to_num(rec.label_at(grid), nan=0.0) != 0]
    if not len(stress) or stress[-1] > rec.end - 60.0:
        raise ValueError(f"{rec.subject}: the session does not end with rest")
    return max(edges[edges > stress[-1]][0], rec.end - CLOSING_REST_S), rec.end


def closing_rest_before(rec, hop_s: float = WindowConfig().hop_s) -> Recording:
    """A copy of the closing rest played (unlabelled) before the session starts: the session's own
    windows are then scored after a different history - the calibration and the first ranks see
    the viewer's rest at the end of the protocol instead of its opening minutes."""
    a, b = _closing_rest(rec)
    length = np.floor((b - a) / hop_s) * hop_s  # keeps the window grid of the session
    shift = rec.start - length - a
    tracks = []
    for tr in rec.tracks:
        m = (tr.timestamps >= a) & (tr.timestamps < a + length)
        tracks.append(Chunk(tr.info, np.vstack([tr.data[m], tr.data]), np.r_[tr.timestamps[m] + shift, tr.timestamps]))
    lab = rec.labels
    labels = Labels(np.r_[rec.start - length, lab.timestamps], np.r_[np.nan, lab.values], lab.name, lab.classes, lab.end)
    return Recording(rec.subject, tracks, labels, dict(rec.meta))


class Variant:
    """A dataset whose recordings are transformed (cached under its own name)."""

    def __init__(self, base, name: str, transform) -> None:
        self.base, self.name, self.transform, self.root = base, f"{base.name}-{name}", transform, base.root

    def subjects(self):
        return self.base.subjects()

    def load(self, subject):
        return self.transform(self.base.load(subject))


VARIANTS = {"blocks shuffled A": blocks_shuffled(101), "blocks shuffled B": blocks_shuffled(102),
            "closing rest before": closing_rest_before}


def _rows(s: WindowSet, keep: np.ndarray) -> WindowSet:
    return WindowSet(s.subject, s.features, s.X[keep], s.t[keep], s.y[keep], s.raw, s.raw_t)


def _with_clock(s: WindowSet) -> WindowSet:
    """The positive control's input: the minutes since the session started as one more feature."""
    start = s.raw_t[0] if s.raw_t is not None and len(s.raw_t) else s.t[0]
    return WindowSet(s.subject, s.features + ("minutes_since_start",), np.column_stack([s.X, (s.t - start) / 60.0]),
                     s.t, s.y)


def score_model(train_sets, kind, tests: dict[str, list[WindowSet]], n_jobs: int) -> dict[str, dict]:
    """LOSO: fold i trains on every train_sets[j], j != i, and scores subject i in every test
    version - one fit per fold, each subject's versions stacked into one set of rows to score."""
    names = list(tests)
    stacked = [WindowSet(v[0].subject, v[0].features, np.vstack([s.X for s in v]), np.concatenate([s.t for s in v]),
                         np.concatenate([s.y for s in v])) for v in zip(*(tests[k] for k in names))]
    probs = loso(stacked, kind, n_jobs=n_jobs, train_sets=train_sets)
    out = {}
    for j, name in enumerate(names):
        parts = []
        for i, p in enumerate(probs):
            start = sum(len(tests[k][i].X) for k in names[:j])
            parts.append(p[start:start + len(tests[name][i].X)])
        out[name] = report(tests[name], parts)
    return out


def main() -> None:
    args = stress_predict_args(__doc__, "--quick", "the shipped pipeline and the control only")
    ds = StressPredict(args.root)
    config, cache = WindowConfig(), args.cache or None
    t0 = time.perf_counter()
    sets, copies = labelled_windows(ds, None, config, MODEL_FEATURES, ReorderConfig(), args.n_jobs, cache)
    subjects = [s.subject for s in sets]
    tests = {"as recorded": sets}
    for name, transform in VARIANTS.items():
        vs = {s.subject: s for s in extract_windows(Variant(ds, name.replace(" ", "-"), transform), subjects, config,
                                                    n_jobs=args.n_jobs, cache=cache)}
        # the session's own windows (a prepended copy adds earlier ones, unlabelled)
        first = {s.subject: s.t[0] - WindowConfig().hop_s / 2 for s in sets}
        tests[name] = _align([_rows(vs[s], vs[s].t >= first[s]) for s in subjects], MODEL_FEATURES)
    print(f"windows: {len(subjects)} participants x {len(tests)} versions of each session, "
          f"{len(copies[0])} re-ordered copies of each for training ({time.perf_counter() - t0:.0f} s)")
    rows = {"shipped: ensemble trained on re-ordered copies": (copies, "ensemble", tests)}
    if not args.quick:
        rows["ensemble trained on the sessions as recorded"] = ([[s] for s in sets], "ensemble", tests)
        rows["logistic trained on the sessions as recorded"] = ([[s] for s in sets], "logistic", tests)
    clocked = {k: [_with_clock(s) for s in v] for k, v in tests.items()}
    rows["control: boosting + minutes since start, as recorded"] = ([[s] for s in clocked["as recorded"]], "boosting",
                                                                   clocked)
    results = {}
    print(f"{'LOSO balanced accuracy (ROC AUC)':56s}" + "".join(f"{k:>22s}" for k in tests))
    for name, (train, kind, t) in rows.items():
        r = score_model(train, kind, t, args.n_jobs)
        results[name] = {k: {m: v[m] for m in ("balanced_accuracy", "f1", "roc_auc")} for k, v in r.items()}
        print(f"{name:56s}" + "".join(f"{v['balanced_accuracy']:>15.3f} ({v['roc_auc']:.3f})" for v in r.values()),
              flush=True)
    print(f"total {time.perf_counter() - t0:.0f} s")
    print(json.dumps({"benchmark": "models_clock", "participants": len(subjects), "results": results}))


if __name__ == "__main__":
    np.seterr(all="ignore")
    warnings.filterwarnings("ignore", category=RuntimeWarning)
    main()
