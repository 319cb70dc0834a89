"""Group viewing (issue 21): four people watch one film together, through the real ``engage`` command.

1. ``engage live --profile group-sim --speed 0 --duration 600 --record g.xdf --dashboard`` (four simulated
   viewers, the group as one) → each viewer has their own baseline and events; the group's events
   (``group.boredom.onset`` …) name at least k of the 4 viewers, each of whom was bored (or aroused,
   or inattentive) at the time; every decision names the viewers it served; pyxdf reads back each
   viewer's streams (viewer id in the stream header) and the group's ``GroupEngagement`` stream.
2. The operator's own profile includes group-sim and asks for ``least-engaged`` (nobody left behind)
   with a fifth viewer whose sensors never connect → each decision follows one viewer, the least
   engaged one by the evidence it logged; the absent viewer counts in the group's size and lowers
   its confidence, not its score.
3. ``personal`` (a screen each) → four films from a shared start, each decision serving its viewer.
4. The dashboard in headless Chromium: a card per viewer and the group's.
5. ``engage story compare --group 4``: the group policies against the fixed path, paired by audience.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pyxdf = pytest.importorskip("pyxdf")

ROOT = Path(__file__).resolve().parents[2]
VIEWERS = ["viewer-1", "viewer-2", "viewer-3", "viewer-4"]
ON = {"boredom": ("boredom.onset", "boredom.offset"), "arousal": ("arousal.high", "arousal.low"),
      "attention": ("attention.lost", "attention.regained")}


def live(*args: str, cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "engage", "live", *args], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen, timeout: float = 400) -> tuple[str, str]:
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, f"{' '.join(proc.args)}\n{out[-2000:]}\n{err[-3000:]}"
    return out, err


def jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def active_at(events: list[dict], viewer: str, dim: str, t: float) -> bool:
    """Whether ``viewer``'s last ``dim`` event at or before ``t`` turned the state on."""
    on, off = ON[dim]
    last = [e for e in events if e["viewer"] == viewer and e["type"] in (on, off) and e["timestamp"] <= t + 1e-6]
    return bool(last) and last[-1]["type"] == on


def check_group_events(events: list[dict], viewers: list[str], k: int, n: int) -> list[dict]:
    group = [e for e in events if e["viewer"] == "group" and e["type"].startswith("group.")]
    assert {e["type"] for e in group} >= {"group.boredom.onset"}, sorted({e["type"] for e in events})
    for e in group:
        if e["type"] in ("group.boredom.onset", "group.arousal.high", "group.attention.lost"):
            dim = e["type"].split(".")[1]
            ev = e["evidence"]
            assert ev["k"] == k and ev["n"] == n and len(ev["viewers"]) >= k and set(ev["viewers"]) <= set(viewers)
            for v in ev["viewers"]:  # each viewer it counts was in that state then, by their own events
                assert active_at(events, v, dim, e["timestamp"]), (e, v)
    return group


@pytest.mark.timeout(900)
def test_four_viewers_watch_one_film_together(tmp_path):
    (tmp_path / "nobody-left-behind.toml").write_text(
        '[profile]\ninclude = ["group-sim"]\n[group]\npolicy = "least-engaged"\n'
        f'viewers = {json.dumps([*VIEWERS, "viewer-5"])}   # viewer-5\'s sensors never connect\n')
    (tmp_path / "screens.toml").write_text('[profile]\ninclude = ["group-sim"]\n[group]\npolicy = "personal"\n')
    together = live("--profile", "group-sim", "--speed", "0", "--duration", "600", "--record", "g.xdf",
                    "--dashboard", "--port", "0", "--out", "together", cwd=tmp_path)
    out, err = finish(together)

    # -- 1. the group as one: what the operator sees on the terminal
    assert "a group (viewer-1, viewer-2, viewer-3, viewer-4); policy aggregate" in err
    assert "when 2 of the 4 viewers are bored" in err
    assert "group: 4 viewers (viewer-1, viewer-2, viewer-3, viewer-4), 4 present at the end" in out
    assert "story.end" in out
    assert '>  scene platform       group: "The Platform"' in out  # every line of the group's film says so
    events = jsonl(tmp_path / "together" / "events.jsonl")
    assert sorted(e["viewer"] for e in events if e["type"] == "baseline.ready") == VIEWERS  # a baseline each
    own = {e["viewer"] for e in events if e["type"] in ("boredom.onset", "arousal.high", "attention.lost")}
    assert len(own & set(VIEWERS)) >= 3  # the viewers' own events, not only the group's
    check_group_events(events, VIEWERS, k=2, n=4)
    plans = jsonl(tmp_path / "together" / "scenes.jsonl")
    assert len(plans) >= 5 and {p["viewer"] for p in plans} == {"group"}
    for p in plans[1:]:
        assert p["evidence"]["served"] == VIEWERS, p["reason"]  # all four present and sure: served all
    chosen = [p for p in plans if p["evidence"]["rule"] not in ("start", "only")]
    assert chosen and all(p["reason"].startswith("the group as one: 4 of 4 viewers present and sure") for p in chosen)
    assert all(p["evidence"]["group"]["policy"] == "aggregate" for p in chosen)

    # the recording: each viewer's streams, told apart by the viewer id in their header, and the group's
    streams, _ = pyxdf.load_xdf(str(tmp_path / "g.xdf"))
    header = {s["info"]["name"][0]: s for s in streams}
    for v in VIEWERS:
        for kind in ("ecg", "eda", "face"):
            assert f"sim-{v}-{kind}" in header
        s = header[f"{v}-engagement"]
        assert s["info"]["desc"][0]["acquisition"][0]["viewer"] == [v] and len(s["time_stamps"]) > 300
    g = header["group-engagement"]
    assert g["info"]["type"] == ["GroupEngagement"] and g["info"]["desc"][0]["acquisition"][0]["viewer"] == ["group"]
    labels = [c["label"][0] for c in g["info"]["desc"][0]["channels"][0]["channel"]]
    rows = {name: g["time_series"][:, i] for i, name in enumerate(labels)}
    assert np.all(rows["viewers"] == 4) and np.median(np.diff(g["time_stamps"])) == pytest.approx(1.0, abs=0.01)
    assert np.nanmax(rows["bored_share"]) >= 0.5 and np.nanmin(rows["bored_share"]) <= 0.25
    onset = next(e for e in events if e["type"] == "group.boredom.onset")
    at = int(np.argmin(np.abs(g["time_stamps"] - onset["timestamp"])))
    assert rows["bored_share"][at] >= 0.5  # the stream says what the event says

    # the report: the group's engagement on the timeline, and a panel for each viewer
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    report = subprocess.run([sys.executable, "-m", "engage", "report", "g.xdf", "-o", "report/g.html"], cwd=tmp_path,
                            env=env, capture_output=True, text=True, timeout=300)
    assert report.returncode == 0, report.stderr[-3000:]
    html = (tmp_path / "report" / "g.html").read_text()
    assert "Each viewer who watched" in html and (tmp_path / "report" / "g-viewers.png").stat().st_size > 20_000

    # -- 2. nobody left behind, with a viewer who never connects; 3. a screen each
    behind = live("--profile", "nobody-left-behind.toml", "--speed", "0", "--duration", "300", "--out", "behind",
                  "--quiet", cwd=tmp_path)
    screens = live("--profile", "screens.toml", "--speed", "0", "--duration", "300", "--out", "screens", "--quiet",
                   cwd=tmp_path)
    out, err = finish(behind)
    assert "policy least-engaged" in err and "when 3 of the 5 viewers" in err
    assert "group: 5 viewers (viewer-1, viewer-2, viewer-3, viewer-4, viewer-5), 4 present at the end" in out
    events = jsonl(tmp_path / "behind" / "events.jsonl")
    group = check_group_events(events, VIEWERS, k=3, n=5)
    assert all(e["confidence"] <= 0.8 + 1e-6 for e in group)  # 4 of 5 known at best: the absent one lowers it
    plans = jsonl(tmp_path / "behind" / "scenes.jsonl")
    chosen = [p for p in plans if p["evidence"]["rule"] not in ("start", "only")]
    assert chosen
    for p in chosen:
        served, evidence = p["evidence"]["served"], p["evidence"]["group"]
        assert len(served) == 1 and p["reason"].startswith(f"nobody left behind: following {served[0]}, the least "
                                                           "engaged of 4 present")
        if "bored since" not in p["reason"]:  # nobody bored: the highest boredom over the last half-minute
            assert evidence["boredom"][served[0]] == max(evidence["boredom"].values()), p["reason"]
    assert "viewer-5" not in {v for p in plans for v in p["evidence"]["served"]}

    out, err = finish(screens)
    assert "policy personal" in err
    plans = jsonl(tmp_path / "screens" / "scenes.jsonl")
    assert {p["viewer"] for p in plans} == set(VIEWERS)
    starts = [p for p in plans if p["evidence"]["rule"] == "start"]
    assert sorted(p["viewer"] for p in starts) == VIEWERS and len({p["timestamp"] for p in starts}) == 1
    assert all(p["evidence"]["served"] == [p["viewer"]] for p in plans)


@pytest.mark.timeout(300)
def test_the_dashboard_shows_each_viewer_and_the_group(tmp_path):
    """``engage live --profile group-sim --dashboard`` (four times real time), watched in headless Chromium:
    a card for each of the four viewers and one for the group, each with its own values."""
    sync_api = pytest.importorskip("playwright.sync_api")
    chromium = os.environ.get("ENGAGE_CHROMIUM", "/usr/bin/chromium")
    if not Path(chromium).exists():
        pytest.skip(f"no chromium at {chromium}")
    proc = live("--profile", "group-sim", "--speed", "4", "--duration", "400", "--dashboard", "--port", "0",
                "--out", "out", "--quiet", cwd=tmp_path)
    try:
        head = []
        while not any("dashboard at " in line for line in head):
            line = proc.stderr.readline()
            assert line, "".join(head)
            head.append(line)
        url = next(line for line in head if "dashboard at " in line).split("dashboard at ")[1].split()[0]
        with sync_api.sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium, args=["--headless", "--no-sandbox",
                                                                         "--disable-gpu", "--disable-dev-shm-usage"])
            page = browser.new_page(viewport={"width": 1400, "height": 1100})
            page.goto(url)
            # the viewers' engagement starts after their 60 s baseline: 15 s at four times real time
            page.wait_for_function(
                """() => {
                    const cards = [...document.querySelectorAll('#viewers .viewer-card')];
                    return cards.length === 5 && cards.every((c) =>
                        /^bor [0-9.]+$/.test(c.querySelector('.v.boredom').textContent))
                        && /4 of 4 present/.test(cards[0].textContent);
                }""", timeout=90_000)
            cards = page.eval_on_selector_all("#viewers .viewer-card", "cs => cs.map((c) => c.dataset.viewer)")
            assert cards == ["group", *VIEWERS]
            assert page.text_content("#viewer-count") == "4 viewers"
            # the main panel shows the group; heart rate, EDA and face one viewer's (not four drawn as one line)
            assert page.text_content("#lead") == "— the group (signals below: viewer-1)"
            values = page.eval_on_selector_all("#viewers .viewer-card .v.boredom", "vs => vs.map((v) => v.textContent)")
            assert len(set(values[1:])) > 1, values  # each viewer's own boredom, not one value copied
            page.screenshot(path=str(tmp_path / "group-dashboard.png"), full_page=True)
            browser.close()
    finally:
        proc.send_signal(2)  # Ctrl-C: stop after this step
        try:
            proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode == 0


FORKS = """
[story]
id = "two-forks"
title = "Two Forks"
start = "arrival"

[[scene]]
id = "arrival"
title = "Arrival"
text = "A long, quiet arrival (the viewers' baseline)."
intensity = 0.15
tone = "calm"
duration_s = 75
next = ["waiting", "alarm"]

[[scene]]
id = "waiting"
title = "Waiting"
text = "Nothing happens, slowly."
intensity = 0.1
tone = "calm"
duration_s = 50
next = ["quiet", "escape"]

[[scene]]
id = "alarm"
title = "Alarm"
text = "Bells everywhere."
intensity = 0.85
tone = "frantic"
duration_s = 50
next = ["quiet", "escape"]

[[scene]]
id = "quiet"
title = "Quiet End"
text = "They sit."
intensity = 0.1
tone = "calm"
duration_s = 40
next = []

[[scene]]
id = "escape"
title = "Escape"
text = "They run."
intensity = 0.9
tone = "frantic"
duration_s = 40
next = []
"""


@pytest.mark.timeout(600)
def test_story_compare_for_groups(tmp_path):
    """``engage story compare --group 4 --viewers 8``: two audiences of four under each group policy and the
    fixed path, paired; the table, the intervals and a JSON line an analyst can read."""
    (tmp_path / "forks.toml").write_text(FORKS)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-m", "engage", "story", "compare", "forks.toml", "--group", "4",
                        "--viewers", "9", "--jobs", "2", "--json"], cwd=tmp_path, env=env, capture_output=True,
                       text=True, timeout=500)
    assert r.returncode == 0, r.stderr[-3000:]
    print(r.stdout)
    assert "9 viewers make 2 audiences of 4 (8 viewers)" in r.stderr
    lines = r.stdout.strip().splitlines()
    header = lines[0].split()
    assert header[:2] == ["policy", "groups"] and "worst viewer bored %" in lines[0]
    table = {line.split()[0]: line.split() for line in lines[1:5]}
    assert list(table) == ["aggregate", "least-engaged", "majority", "fixed"]
    assert all(row[1] == "2" and row[2] == "2/2" for row in table.values())  # every audience reached an ending
    assert float(table["fixed"][5]) == 0.0  # the authored path changes no plot
    for name in ("aggregate", "least-engaged", "majority"):
        line = next(x for x in lines if x.startswith(f"  {name}: "))
        assert re.search(r"group bored [+-][0-9.]+ \[[+-][0-9.]+ … [+-][0-9.]+\] p = ", line), line
        assert "worst viewer bored" in line and "plot changes" in line
    runs = json.loads(lines[-2])
    summary = json.loads(lines[-1])
    assert summary["viewers"] == 8 and summary["group"] == 4 and summary["groups"] == 2
    seeds = {name: [x["seed"] for x in rs] for name, rs in runs.items()}
    assert all(s == [0, 1] for s in seeds.values())  # paired: the same audiences under every policy
    for name, rs in runs.items():
        for x in rs:
            assert len(x["viewer_bored_frac"]) == 4 and x["worst_bored_frac"] == max(x["viewer_bored_frac"])
            assert x["bored_frac"] == pytest.approx(np.mean(x["viewer_bored_frac"]))
        if name == "least-engaged":  # nobody left behind: every decision served one viewer
            assert all(sum(x["served"].values()) >= x["plot_changes"] for x in rs)
    fixed = runs["fixed"]
    for name in ("aggregate", "least-engaged", "majority"):
        d = summary["policies"][name]["worst_bored_frac_diff"]
        mine = [x["worst_bored_frac"] for x in runs[name]]
        assert d["diff"] == pytest.approx(np.mean(mine) - np.mean([x["worst_bored_frac"] for x in fixed]), abs=1e-4)


@pytest.mark.realdata
@pytest.mark.timeout(300)
def test_two_people_in_front_of_one_camera(tmp_path, talking_head_clip, shared_data):
    """The shared talking-head clip twice side by side, the right copy 2 s later (ffmpeg), played as a camera
    with ``faces = 2`` → ``engage live --record``: two viewers with stable ids, each their own Face and
    FaceFeatures streams (viewer id in the header, pyxdf), and each one's blinks are that copy's."""
    import csv
    import shutil

    if shutil.which("ffmpeg") is None:
        pytest.skip("no ffmpeg")
    shift, n = 50, 150
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-i", str(talking_head_clip), "-ss", str(shift / 25),
                    "-i", str(talking_head_clip), "-filter_complex",
                    f"[0:v]trim=end_frame={n},setpts=PTS-STARTPTS[a];[1:v]trim=end_frame={n},setpts=PTS-STARTPTS[b];"
                    "[a][b]hstack", "-c:v", "libx264", "-crf", "18", "-pix_fmt", "yuv420p", "two.mp4"],
                   cwd=tmp_path, check=True, timeout=120)
    (tmp_path / "two.toml").write_text('[sensor.camera]\nkind = "webcam"\nfile = "two.mp4"\nfaces = 2\n')
    out, err = finish(live("--profile", "two.toml", "--no-story", "--duration", "8", "--record", "two.xdf",
                           "--out", "out", "--quiet", cwd=tmp_path), timeout=200)
    streams, _ = pyxdf.load_xdf(str(tmp_path / "two.xdf"))
    by_type: dict[str, dict[str, dict]] = {}
    for s in streams:
        by_type.setdefault(s["info"]["type"][0], {})[s["info"]["desc"][0]["acquisition"][0]["viewer"][0]] = s
    ids = ["viewer-1-face-1", "viewer-1-face-2"]
    assert sorted(by_type["Face"]) == ids and sorted(by_type["FaceFeatures"]) == ids  # two viewers, no third
    with (shared_data / "talking_head_blinks" / "blinks_helper_annotation.csv").open() as fh:
        ref = [(int(r["onset_frame"]), int(r["offset_frame"])) for r in csv.DictReader(fh)]
    counts = {}
    for viewer, offset in zip(ids, (0, shift)):
        face = by_type["Face"][viewer]
        assert len(face["time_stamps"]) == n and np.all(face["time_series"][:, 0] == 1)  # present in every frame
        ff = by_type["FaceFeatures"][viewer]
        labels = [c["label"][0] for c in ff["info"]["desc"][0]["channels"][0]["channel"]]
        ends = ff["time_stamps"][ff["time_series"][:, labels.index("blink_duration")] > 0] - face["time_stamps"][0]
        want = [(a - offset, b - offset) for a, b in ref if a >= offset and b < offset + n]
        counts[viewer] = (len(ends), len(want))
        # each blink is confirmed from 0.1 s before to 0.3 s after the end of one of that copy's annotated blinks
        # (annotated to +-1 frame), not the other copy's
        for e in ends:
            assert any(-0.1 <= e - (b + 1) / 25 <= 0.3 for _, b in want), (viewer, e, want)
    print(counts)
    # each copy's blinks, all of them: the right's 7 and the left's 8 (the left face sits off the frame's centre, so
    # its head yaw and with it its pose-normalised eye openness moves with the head turn during its first blink,
    # and its first two blinks are 0.1 s apart: each ends when the lids stop reopening, not at the old level)
    assert counts == {"viewer-1-face-1": (8, 8), "viewer-1-face-2": (7, 7)}, counts
