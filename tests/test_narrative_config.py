"""One narrative configuration for every command that plays a story: the profile's [narrative]
table, the flags, the Session taking the rewriter and the configuration, ink stories everywhere."""

from __future__ import annotations

import json
import subprocess
import sys

import jsonschema
import pytest

from engage.cli import main
from engage.core import ConfigError, VirtualClock
from engage.narrative.config import NarrativeConfig, parse_host_port
from engage.narrative.ink import sample_ink_path
from engage.narrative.plan import plan_schema
from engage.narrative.story import default_story_path, open_story
from engage.sensors.profiles import profile_from_text
from engage.sensors.simulated import SimulatedViewer
from engage.session import Session

INK = sample_ink_path()
COMMANDS = (["live"], ["replay"], ["demo"], ["story", "play"])
FLAGS = ("--rewriter", "--llm-url", "--llm-model", "--llm-api-key-env", "--llm-prompt", "--llm-max-tokens",
         "--llm-temperature", "--llm-seed", "--llm-timeout", "--osc", "--ws", "--ws-wait", "--scenes-out", "--overlay")


def test_config_from_a_profile_table_with_paths_relative_to_the_profile(tmp_path):
    cfg = NarrativeConfig.from_table({"story": "film.ink.json", "rewriter": "llm", "llm_url": "http://127.0.0.1:8080/v1",
                                      "llm_model": "qwen", "llm_seed": 7, "llm_timeout_s": 5, "osc": "127.0.0.1:9000",
                                      "ws": "127.0.0.1:8766", "scenes_out": "out/plans.jsonl"},
                                     "rig.toml", base=tmp_path)
    assert cfg.story == str(tmp_path / "film.ink.json") and cfg.scenes_out == str(tmp_path / "out/plans.jsonl")
    assert (cfg.rewriter, cfg.llm_model, cfg.llm_seed, cfg.llm_timeout_s) == ("llm", "qwen", 7, 5.0)
    flags = cfg.merged(rewriter="template", llm_seed=None, osc="9100")
    assert flags.rewriter == "template" and flags.llm_seed == 7 and flags.osc == "9100"  # a flag wins, None does not


@pytest.mark.parametrize("table, words", [
    ({"rewrite": "llm"}, "unknown key 'rewrite' (did you mean 'rewriter'?)"),
    ({"rewriter": "gpt"}, "rewriter must be one of none, template, llm"),
    ({"rewriter": "llm"}, "needs an endpoint"),
    ({"llm_url": "ftp://x"}, "llm_url must be an http(s) URL"),
    ({"llm_api_key_env": "sk-12345 secret"}, "not the key itself"),
    ({"llm_temperature": 3}, "llm_temperature must be within [0, 2]"),
    ({"llm_timeout_s": 0}, "llm_timeout_s must be within (0, 3600]"),
    ({"llm_max_tokens": 1.5}, "whole number"),
    ({"osc": "localhost"}, "expected HOST:PORT"),
    ({"ws": "127.0.0.1:99999"}, "port must be within"),
    ({"story": 3}, "story must be a non-empty string"),
])
def test_bad_narrative_settings_are_config_errors_naming_the_key(table, words):
    with pytest.raises(ConfigError) as err:
        NarrativeConfig.from_table(table, "rig.toml")
    assert str(err.value).startswith("rig.toml: ") and words in str(err.value)


def test_host_port():
    assert parse_host_port("0.0.0.0:1") == ("0.0.0.0", 1)
    with pytest.raises(ConfigError):
        parse_host_port("a:b")


def test_profiles_carry_a_narrative_table():
    p = profile_from_text('[sensor.v]\nkind = "simulated"\n[narrative]\nrewriter = "none"\nosc = "127.0.0.1:9000"\n',
                          "rig.toml")
    assert p.narrative == {"rewriter": "none", "osc": "127.0.0.1:9000"}
    with pytest.raises(ConfigError, match="'narrative' must be a table"):
        profile_from_text('narrative = 3\n[sensor.v]\nkind = "simulated"\n', "rig.toml")


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c))
def test_every_command_that_plays_a_story_has_the_narrative_flags(command, capsys):
    with pytest.raises(SystemExit):
        main([*command, "--help"])
    text = capsys.readouterr().out
    missing = [f for f in FLAGS if f not in text]
    assert missing == [] and "story and narrative" in text and "[narrative]" in text


def test_session_rewrites_with_the_template_by_default_and_takes_a_rewriter():
    def plans(**kw):
        s = Session([SimulatedViewer(seed=1)], VirtualClock(0.0), story=open_story(INK), **kw)
        s.run(duration=120.0)
        return s.log.plans

    default = plans()
    assert default and all(p.rewritten and p.rewritten_by == "template" and not p.ai_generated for p in default)
    assert all(p.text.startswith(f"[pacing {p.directives['pacing']}, ") for p in default)
    assert not any(p.rewritten for p in plans(rewriter=None))
    assert not any(p.rewritten for p in plans(narrative=NarrativeConfig(rewriter="none")))


def _run(args, cwd):
    return subprocess.run([sys.executable, "-m", "engage", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=600)


def test_live_reads_the_profiles_narrative_table(tmp_path):
    (tmp_path / "rig.toml").write_text(
        '[sensor.viewer]\nkind = "simulated"\nseed = 3\n'
        f'[narrative]\nstory = "{INK}"\nscenes_out = "plans/scenes.jsonl"\nrewriter = "template"\n')
    r = _run(["live", "--profile", "rig.toml", "--speed", "0", "--duration", "100", "--quiet", "--out", "out"], tmp_path)
    assert r.returncode == 0, r.stderr
    lines = (tmp_path / "plans" / "scenes.jsonl").read_text().splitlines()
    plans = [json.loads(x) for x in lines]
    assert plans[0]["scene"] == "studio" and all(p["rewritten_by"] == "template" for p in plans)
    for p in plans:
        jsonschema.validate(p, plan_schema())
    # a flag wins over the profile
    r = _run(["live", "--profile", "rig.toml", "--speed", "0", "--duration", "60", "--quiet", "--out", "out",
              "--rewriter", "none", "--scenes-out", "flag.jsonl"], tmp_path)
    assert r.returncode == 0, r.stderr
    assert not any(json.loads(x)["rewritten"] for x in (tmp_path / "flag.jsonl").read_text().splitlines())
    (tmp_path / "bad.toml").write_text('[sensor.viewer]\nkind = "simulated"\n[narrative]\nrewritter = "llm"\n')
    r = _run(["live", "--profile", "bad.toml", "--speed", "0", "--duration", "10"], tmp_path)
    assert r.returncode == 2 and "bad.toml: [narrative]: unknown key 'rewritter' (did you mean 'rewriter'?)" in r.stderr


def test_live_with_the_simulated_profile_plays_the_sample_ink_story(tmp_path):
    # the acceptance's command line: a bare name is the story shipped with engage
    r = _run(["live", "--profile", "simulated", "--story", "last_broadcast.ink.json", "--speed", "0", "--duration",
              "90", "--quiet", "--out", "out"], tmp_path)
    assert r.returncode == 0, r.stderr
    plans = [json.loads(x) for x in (tmp_path / "out" / "scenes.jsonl").read_text().splitlines()]
    assert [p["scene"] for p in plans[:2]] == ["studio", plans[1]["scene"]] and len(plans) >= 2


def test_demo_takes_an_ink_story_and_a_toml_one(tmp_path, capsys):
    assert main(["demo", "--minutes", "2", "--quiet", "--story", str(INK), "--out", str(tmp_path / "a")]) == 0
    first = json.loads((tmp_path / "a" / "scenes.jsonl").read_text().splitlines()[0])
    assert first["scene"] == "studio" and first["cast"] == ["Lena", "Tomas"]
    assert main(["demo", "--minutes", "1", "--quiet", "--story", str(default_story_path()), "--rewriter", "none",
                 "--out", str(tmp_path / "b")]) == 0
    first = json.loads((tmp_path / "b" / "scenes.jsonl").read_text().splitlines()[0])
    assert first["scene"] == "platform" and first["rewritten"] is False
    capsys.readouterr()
    assert main(["demo", "--story", str(tmp_path / "missing.ink.json")]) == 2
    assert "missing.ink.json: not a file" in capsys.readouterr().err


def test_replay_and_report_take_an_ink_story(tmp_path):
    from engage.record.recorder import RecorderSink, XdfRecorder

    raw = XdfRecorder(tmp_path / "raw.xdf")  # the sensors' streams only, as LabRecorder would have them
    Session([SimulatedViewer(seed=4)], VirtualClock(0.0), calibration_s=30.0,
            extra_processors=[RecorderSink(raw, types=("ECG", "EDA", "Face"), events=False)]).run(duration=100.0)
    r = _run(["replay", "raw.xdf", "--story", str(INK), "--quiet", "--out", "rep"], tmp_path)
    assert r.returncode == 0, r.stderr
    plans = [json.loads(x) for x in (tmp_path / "rep" / "scenes.jsonl").read_text().splitlines()]
    assert plans[0]["scene"] == "studio" and plans[0]["schema"] == "engage.scene-plan/1"
    r = _run(["report", "raw.xdf", "--story", str(INK), "-o", "rep/report.html"], tmp_path)
    assert r.returncode == 0, r.stderr
    html = (tmp_path / "rep" / "report.html").read_text()
    assert "story start: &#x27;Midnight at Radio Kestrel" in html
    r = _run(["report", "raw.xdf", "--overlay", "x.toml", "-o", "rep/r2.html"], tmp_path)
    assert r.returncode == 2 and "give the story too" in r.stderr


def test_bad_outputs_are_one_line_errors(tmp_path, capsys):
    assert main(["story", "play", str(INK), "--simulate", "--osc", "nowhere"]) == 2
    err = capsys.readouterr().err
    assert "osc" in err and "'nowhere': expected HOST:PORT" in err
    assert main(["story", "play", str(INK), "--simulate", "--rewriter", "llm"]) == 2
    assert "needs an endpoint" in capsys.readouterr().err
    assert main(["demo", "--story", str(INK), "--llm-timeout", "-1"]) == 2
    assert "llm_timeout_s must be within" in capsys.readouterr().err


def test_the_narrative_modules_docstring_examples_hold():
    import doctest

    import engage.core.safeload
    import engage.narrative.canon
    import engage.narrative.config
    import engage.narrative.evaluation
    import engage.narrative.group_evaluation
    import engage.narrative.ink
    import engage.narrative.llm
    import engage.narrative.plan
    import engage.narrative.publish
    import engage.narrative.rewriter
    import engage.narrative.story

    for module in (engage.core.safeload, engage.narrative.canon, engage.narrative.config, engage.narrative.evaluation,
                   engage.narrative.group_evaluation, engage.narrative.ink,
                   engage.narrative.llm, engage.narrative.plan, engage.narrative.publish, engage.narrative.rewriter,
                   engage.narrative.story):
        failed, tried = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
        assert failed == 0 and tried > 0, module.__name__


def test_a_prompt_template_is_read_bounded_and_refused_clearly(tmp_path):
    import re

    from engage.narrative.rewriter import MAX_PROMPT_BYTES, read_prompt

    good = tmp_path / "prompt.txt"
    good.write_text("Rewrite the scene. Keep the cast.\n", encoding="utf-8")
    assert read_prompt(good) == "Rewrite the scene. Keep the cast.\n"
    cases = {"huge.txt": (b"x" * (MAX_PROMPT_BYTES + 1), "at most 64 KB"),
             "latin1.txt": (b"caf\xe9", "not UTF-8 text (byte 3)"),
             "empty.txt": (b"  \n", "is empty")}
    for name, (data, message) in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(ConfigError, match=re.escape(message)) as err:
            read_prompt(tmp_path / name)
        assert name in str(err.value)
    with pytest.raises(ConfigError, match="cannot read the prompt template"):
        read_prompt(tmp_path / "missing.txt")
