"""``engage eval blinks``, ``engage eval rppg`` and ``engage webcam`` end to end on real clips."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytest.importorskip("mediapipe")

from engage.cli import main  # noqa: E402

CLIP = "talking_head_blinks/WDA_AlexandriaOcasioCortez_000.mp4"


def _last_json(out: str) -> dict:
    return json.loads(out.strip().splitlines()[-1])


@pytest.mark.realdata
def test_eval_blinks_on_the_annotated_clip(shared_data, capsys, tmp_path):
    video = shared_data / CLIP
    ann = shared_data / "talking_head_blinks" / "blinks_helper_annotation.csv"
    det = tmp_path / "det.csv"
    assert main(["eval", "blinks", "--video", str(video), "--annotations", str(ann), "--detections", str(det)]) == 0
    r = _last_json(capsys.readouterr().out)
    assert set(r) >= {"precision", "recall", "f1", "n_reference", "n_detected"}
    assert r["n_reference"] == 10 and r["f1"] == 1.0
    assert len(det.read_text().splitlines()) == r["n_detected"] + 1


@pytest.mark.realdata
def test_eval_blinks_on_a_real_webcam_from_the_first_second(shared_data, capsys, tmp_path):
    """UBFC-rPPG subject 1 (a real webcam, the subject looking down at a screen): its two blinks, closed around
    frames 16-21 and 60-63 (the first 0.55 s into the clip), are both found and nothing else is."""
    video = shared_data / "ubfc_rppg_clip" / "vid.avi"
    ann = tmp_path / "ubfc_blinks.csv"
    ann.write_text("video,onset_frame,offset_frame\nvid.avi,16,21\nvid.avi,60,63\n")
    assert main(["eval", "blinks", "--video", str(video), "--annotations", str(ann)]) == 0
    r = _last_json(capsys.readouterr().out)
    assert (r["n_reference"], r["n_detected"], r["true_positives"]) == (2, 2, 2)


@pytest.mark.realdata
def test_eval_rppg_frame_and_face(shared_data, capsys):
    clip = shared_data / "rppg_roi_bias_eval" / "Data" / "India" / "video37_forehead.avi"
    assert main(["eval", "rppg", "--video", str(clip), "--roi", "frame", "--reference-bpm", "67.486"]) == 0
    r = _last_json(capsys.readouterr().out)
    assert 42 <= r["hr_bpm"] <= 210 and "snr_db" in r and "abs_error_bpm" in r and r["fps"] == 15.0
    assert main(["eval", "rppg", "--video", str(shared_data / CLIP), "--window", "6"]) == 0
    r = _last_json(capsys.readouterr().out)
    assert r["roi"] == "face" and 42 <= r["hr_bpm"] <= 210 and r["windows"] >= 2


def test_eval_errors_are_clear(tmp_path, capsys):
    assert main(["eval", "blinks", "--video", str(tmp_path / "x.mp4"), "--annotations", "a.csv"]) == 2
    assert "x.mp4: video file not found" in capsys.readouterr().err
    junk = tmp_path / "junk.avi"
    junk.write_bytes(b"RIFF....AVI junk" * 50)
    assert main(["eval", "rppg", "--video", str(junk), "--roi", "frame"]) == 2
    assert "junk.avi" in capsys.readouterr().err
    task = tmp_path / "model.task"
    task.write_text("not a model")
    assert main(["webcam", "--video", str(junk), "--task", str(task)]) == 2
    assert "model.task: not a MediaPipe .task bundle" in capsys.readouterr().err
    assert main(["webcam", "--screen", "big"]) == 2
    assert "--screen" in capsys.readouterr().err


@pytest.mark.realdata
def test_annotation_csv_problems(shared_data, tmp_path, capsys):
    bad = tmp_path / "ann.csv"
    bad.write_text("video,start,end\nx.mp4,1,2\n")
    assert main(["eval", "blinks", "--video", str(shared_data / CLIP), "--annotations", str(bad)]) == 2
    assert "needs columns onset_frame and offset_frame" in capsys.readouterr().err
    bad.write_text("onset_frame,offset_frame\n5,x\n")
    assert main(["eval", "blinks", "--video", str(shared_data / CLIP), "--annotations", str(bad)]) == 2
    assert "line 2" in capsys.readouterr().err


@pytest.mark.realdata
def test_webcam_command_on_a_video_file_writes_features_only(shared_data, tmp_path):
    out = tmp_path / "face.csv"
    proc = subprocess.run([sys.executable, "-m", "engage", "webcam", "--video", str(shared_data / CLIP),
                           "--features-out", str(out)], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = out.read_text().splitlines()
    assert lines[0].startswith("timestamp,face_present,ear_left") and len(lines) == 201
    assert "blinks/min" in proc.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["face.csv"]  # no frames written


def test_help_has_examples():
    for cmd in (["eval", "blinks"], ["eval", "rppg"], ["webcam"]):
        proc = subprocess.run([sys.executable, "-m", "engage", *cmd, "--help"], capture_output=True, text=True)
        assert proc.returncode == 0 and "examples:" in proc.stdout


def test_annotation_parser_on_arbitrary_text(tmp_path):
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from engage.cli.eval_face import read_blink_annotations
    from engage.core.errors import InputFileError

    path = tmp_path / "a.csv"

    @settings(max_examples=80, deadline=None)
    @given(st.text(alphabet=st.sampled_from(list("onset_frameoffvid,0123456789-\n x.")), max_size=200))
    def check(text):
        path.write_text(text)
        try:
            out = read_blink_annotations(path, "x.mp4", 25.0)
        except InputFileError as exc:
            assert "a.csv" in str(exc)
            return
        assert all(0 <= a < b for a, b in out)

    check()
    path.write_text("onset_frame,offset_frame\n9,13\n24,28\n")
    assert read_blink_annotations(path, "x.mp4", 25.0) == [(9 / 25, 14 / 25), (24 / 25, 29 / 25)]
