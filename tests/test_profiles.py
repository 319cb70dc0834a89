"""Device profiles: every built-in one loads into typed sensors, the top-level sensors/ folder is the
package's, and every kind of bad profile is a ConfigError naming the file, the table and the key."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engage.core.errors import ConfigError
from engage.sensors.profiles import (
    KINDS, BleHrmSensor, LslSensor, Profile, SimulatedSensor, WebcamSensor, builtin_profile_path, builtin_profiles,
    load_profile, profile_from_text,
)

ROOT = Path(__file__).resolve().parents[1]
EXPECTED = {"webcam", "polar-h10", "hr-strap", "lsl-eda", "lsl-eeg", "lab-rig", "simulated"}


def error(text: str, source: str = "rig.toml", **kw) -> str:
    with pytest.raises(ConfigError) as exc:
        profile_from_text(text, source, **kw)
    return str(exc.value)


# --------------------------------------------------------------------------------- built-ins


def test_every_builtin_profile_loads_into_typed_sensors():
    assert EXPECTED <= set(builtin_profiles())
    for name in builtin_profiles():
        p = load_profile(name)
        assert isinstance(p, Profile) and p.sensors and p.description
        assert p.name == name
    cam = load_profile("webcam").sensors[0]
    assert isinstance(cam, WebcamSensor) and cam.device == 0 and cam.fps == 30.0 and cam.url is None
    h10 = load_profile("polar-h10").sensors[0]
    assert isinstance(h10, BleHrmSensor) and h10.polar_ecg and h10.device_name == "Polar H10"
    strap = load_profile("hr-strap").sensors[0]
    assert isinstance(strap, BleHrmSensor) and strap.target == "" and not strap.polar_ecg
    eda = load_profile("lsl-eda").sensors[0]
    assert isinstance(eda, LslSensor) and eda.predicate == "type=EDA" and eda.maps_to == "EDA"
    assert eda.expected_rate == 4.0
    sim = load_profile("simulated")
    assert sim.simulated_only and isinstance(sim.sensors[0], SimulatedSensor) and sim.sensors[0].seed == 0


def test_lab_rig_combines_the_others_in_order():
    rig = load_profile("lab-rig")
    kinds = [(s.name, s.kind) for s in rig.sensors]
    assert kinds == [("camera", "webcam"), ("h10", "ble-hrm"), ("eda", "lsl"), ("eeg", "lsl"), ("markers", "lsl")]
    assert rig.sensors[0].origin.endswith("webcam.toml") and rig.sensors[-1].origin.endswith("lab-rig.toml")
    assert not rig.simulated_only


def test_top_level_sensors_folder_is_the_package_data():
    """The checkout's sensors/*.toml are the files the installed package reads (symlinks into
    engage/sensors/data), and pyproject ships them as package data."""
    top = sorted((ROOT / "sensors").glob("*.toml"))
    assert {p.stem for p in top} == set(builtin_profiles())
    for p in top:
        assert p.resolve() == builtin_profile_path(p.stem).resolve()
        assert [replace(s, origin="") for s in load_profile(p).sensors] == \
            [replace(s, origin="") for s in load_profile(p.stem).sensors]
    assert '"data/*.toml"' in (ROOT / "pyproject.toml").read_text()


def test_every_key_is_documented_in_the_sensors_readme():
    readme = (ROOT / "sensors" / "README.md").read_text()
    for kind, keys in KINDS.items():
        assert f'kind = "{kind}"' in readme
        for key in keys:
            assert f"`{key}`" in readme or f"`[sensor.NAME.{key}]`" in readme, (kind, key)
    for name in builtin_profiles():
        assert f"`{name}`" in readme


def test_a_profile_by_path_may_include_builtins_and_siblings(tmp_path):
    (tmp_path / "strap.toml").write_text('[sensor.belt]\nkind = "ble-hrm"\naddress = "a0:9e:1a:00:00:01"\n')
    main = tmp_path / "rig.toml"
    main.write_text('[profile]\ninclude = ["strap", "lsl-eeg"]\nviewer = "p07"\n'
                    '[sensor.cam]\nkind = "webcam"\nurl = "rtsp://cam.local/1"\n')
    p = load_profile(main)
    assert [s.name for s in p.sensors] == ["belt", "eeg", "cam"]
    assert p.sensors[0].address == "A0:9E:1A:00:00:01" and p.sensors[0].viewer == "viewer-1"
    assert p.sensors[2].viewer == "p07" and p.sensors[2].url == "rtsp://cam.local/1" and p.sensors[2].device is None


def test_simulated_traits_override_only_what_they_name():
    p = profile_from_text('[sensor.v]\nkind = "simulated"\nseed = 3\n[sensor.v.traits]\nresting_hr = 55\n')
    assert p.sensors[0].traits == (("resting_hr", 55.0),)


# --------------------------------------------------------------------------------- bad profiles


def test_unknown_kind_names_file_table_and_the_known_kinds():
    msg = error('[sensor.cam]\nkind = "thermal"\n')
    assert msg.startswith("rig.toml: [sensor.cam]: unknown sensor kind 'thermal'")
    assert "webcam, ble-hrm, lsl, simulated" in msg


def test_unknown_key_names_the_key_and_the_allowed_ones():
    msg = error('[sensor.cam]\nkind = "webcam"\nfsp = 30\n')
    assert msg.startswith("rig.toml: [sensor.cam]: unknown key 'fsp' (allowed: ")
    assert "fps" in msg and "screen_width_cm" in msg


@pytest.mark.parametrize("line,phrase", [
    ("fps = true", "fps must be a number, got a boolean"),
    ('fps = "30"', "fps must be a number, got a string"),
    ("fps = nan", "fps must be a finite number"),
    ("fps = inf", "fps must be a finite number"),
    ("fps = -5", "fps must be >= 1"),
    ("device = 1.5", "device must be an integer"),
    ("device = 1e400", "device must be an integer"),
    ("width = 99999999999999999", "width must be >= 16 and <= 8192"),
    ("task = \"\"", "task must not be empty"),
    ('task = "a\\u0000b"', "task must not contain control characters"),
    ("screen_width_cm = [1, 2]", "screen_width_cm must be a number, got an array"),
])
def test_wrong_types_and_ranges(line, phrase):
    msg = error(f'[sensor.cam]\nkind = "webcam"\n{line}\n')
    assert msg.startswith("rig.toml: [sensor.cam]: ") and phrase in msg


def test_missing_required_keys():
    assert "missing required key 'kind'" in error("[sensor.cam]\nfps = 30\n")
    msg = error('[sensor.eda]\nkind = "lsl"\nexpected_rate = 4\n')
    assert "[sensor.eda]: missing required key: predicate, or one of type" in msg
    msg = error('[sensor.gsr]\nkind = "lsl"\ntype = "GSR"\n')
    assert "[sensor.gsr]: missing required key 'maps_to'" in msg and "EDA" in msg


def test_contradictory_keys():
    assert "give only one of device, url, file" in error('[sensor.c]\nkind = "webcam"\ndevice = 1\nurl = "x"\n')
    assert "give only one of address, device_name" in error(
        '[sensor.s]\nkind = "ble-hrm"\naddress = "A0:9E:1A:00:00:01"\ndevice_name = "H10"\n')
    assert "either predicate or type" in error('[sensor.l]\nkind = "lsl"\npredicate = "type=EDA"\ntype = "EDA"\n')


def test_bad_values_of_specific_keys():
    assert "address must be a Bluetooth MAC address" in error('[sensor.s]\nkind = "ble-hrm"\naddress = "polar"\n')
    assert "unknown stream type 'GSR'" in error('[sensor.l]\nkind = "lsl"\ntype = "GSR"\nmaps_to = "GSR"\n')
    assert "unknown property 'colour'" in error('[sensor.l]\nkind = "lsl"\npredicate = "colour=red"\nmaps_to = "EEG"\n')
    assert "traits: unknown key 'mood'" in error('[sensor.v]\nkind = "simulated"\n[sensor.v.traits]\nmood = 1\n')
    assert "traits.resting_hr must be > 0" in error(
        '[sensor.v]\nkind = "simulated"\n[sensor.v.traits]\nresting_hr = 0\n')
    assert "the sensor name must be" in error('[sensor."a b"]\nkind = "simulated"\n')


def test_duplicate_sensor_names_are_refused_within_and_across_files(tmp_path):
    assert "not valid TOML" in error('[sensor.a]\nkind = "simulated"\n[sensor.a]\nkind = "simulated"\n')
    (tmp_path / "one.toml").write_text('[sensor.eeg]\nkind = "simulated"\n')
    rig = tmp_path / "rig.toml"
    rig.write_text('[profile]\ninclude = ["one.toml", "lsl-eeg"]\n')
    with pytest.raises(ConfigError) as exc:
        load_profile(rig)
    msg = str(exc.value)
    assert "sensor name 'eeg' is used twice" in msg and "one.toml" in msg and "lsl-eeg.toml" in msg


def test_include_cycles_and_missing_includes(tmp_path):
    (tmp_path / "a.toml").write_text('[profile]\ninclude = ["b"]\n[sensor.x]\nkind = "simulated"\n')
    (tmp_path / "b.toml").write_text('[profile]\ninclude = ["a"]\n[sensor.y]\nkind = "simulated"\n')
    with pytest.raises(ConfigError, match="include cycle"):
        load_profile(tmp_path / "a.toml")
    (tmp_path / "c.toml").write_text('[profile]\ninclude = ["nowhere"]\n')
    with pytest.raises(ConfigError, match=r"c.toml: \[profile\]: include 'nowhere': no profile 'nowhere'"):
        load_profile(tmp_path / "c.toml")


def test_file_level_problems(tmp_path):
    assert "unknown top-level key 'sensors'" in error('[sensors.a]\nkind = "simulated"\n')
    assert "[profile]: unknown key 'colour'" in error('[profile]\ncolour = "red"\n[sensor.a]\nkind = "simulated"\n')
    assert "no sensors" in error('[profile]\nname = "empty"\n')
    assert "'sensor' must be tables" in error('sensor = 3\n')
    assert "not valid TOML" in error("[sensor.a\nkind=")
    with pytest.raises(ConfigError, match="no profile 'nosuch'.*built-in: .*polar-h10"):
        load_profile("nosuch")
    with pytest.raises(ConfigError, match="profile file not found"):
        load_profile(tmp_path / "missing.toml")
    bad = tmp_path / "latin1.toml"
    bad.write_bytes(b'[sensor.a]\nkind = "simulated" # caf\xe9\n')
    with pytest.raises(ConfigError, match=r"latin1.toml: not UTF-8 text \(byte 35\)"):
        load_profile(bad)
    big = tmp_path / "big.toml"
    big.write_text("# " + "x" * 300_000 + "\n")
    with pytest.raises(ConfigError, match="over the 256 KB limit"):
        load_profile(big)
    assert error("sensor = " + "[" * 5000 + "]" * 5000).startswith("rig.toml: ")  # deep nesting: no RecursionError


# --------------------------------------------------------------------------------- hypothesis: hostile TOML

_keys = st.sampled_from(sorted({k for keys in KINDS.values() for k in keys} | {"kind", "viewer", "required", "x"}))
_values = st.one_of(
    st.booleans(), st.integers(min_value=-2**70, max_value=2**70), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12), st.sampled_from(list(KINDS) + ["type=EDA", "A0:9E:1A:00:00:01", "EDA", "", "0"]),
    st.lists(st.integers(), max_size=3))


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf") if math.isinf(v) else repr(v)
    if isinstance(v, int):
        return str(v)
    if isinstance(v, list):
        return "[" + ", ".join(map(str, v)) + "]"
    return '"' + "".join(c if c.isprintable() and c not in '"\\' else f"\\u{ord(c):04x}" for c in v
                         if ord(c) < 0xD800 or ord(c) > 0xDFFF) + '"'


_plausible = st.one_of(st.integers(min_value=0, max_value=300), st.floats(min_value=0.5, max_value=100),
                       st.sampled_from([True, False, "type=EDA", "A0:9E:1A:00:00:01", "EDA", "Polar H10", "clip.mp4"]))


@st.composite
def _sensor_tables(draw):
    kind = draw(st.sampled_from(list(KINDS) + ["x"]))
    keys = sorted(KINDS.get(kind, {"fps": None}))
    body = {"kind": kind} if draw(st.integers(0, 9)) else {}
    for key in draw(st.lists(st.sampled_from(keys + ["viewer", "required", "x"]), max_size=4, unique=True)):
        body[key] = draw(_plausible if draw(st.integers(0, 3)) else _values)
    return body


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from(["cam", "strap", "eda", "v", "a b"]), _sensor_tables(), max_size=3))
def test_structured_hostile_profiles_load_or_give_a_config_error(tables):
    text = "".join(f'[sensor."{name}"]\n' + "".join(f"{k} = {_toml_value(v)}\n" for k, v in body.items())
                   for name, body in tables.items())
    try:
        p = profile_from_text(text, "fuzz.toml")
    except ConfigError as exc:
        assert str(exc).startswith("fuzz.toml: ")
        return
    assert [s.name for s in p.sensors] == list(tables)
    for s in p.sensors:
        assert s.kind in KINDS and s.kind == tables[s.name]["kind"]
        for f in ("fps", "ecg_rate", "wait_s", "expected_rate"):
            v = getattr(s, f, None)
            assert v is None or (math.isfinite(v) and v >= 0)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_arbitrary_text_loads_or_gives_a_config_error(text):
    try:
        profile_from_text(text, "fuzz.toml")
    except ConfigError as exc:
        assert str(exc).startswith("fuzz.toml: ")


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_on_disk_load_or_give_a_config_error(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("fuzz") / "p.toml"
    path.write_bytes(b'[sensor.a]\nkind = "simulated"\n' + data)
    try:
        load_profile(path)
    except ConfigError as exc:
        assert str(exc).startswith(str(path))


def test_an_installed_package_finds_the_builtin_profiles_by_name(tmp_path):
    """Build the package as setuptools would install it (build_py honours pyproject's package data)
    and load every built-in profile by name from that copy, away from the checkout."""
    import json
    import os
    import shutil
    import subprocess
    import sys

    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "engage", src / "engage", ignore=shutil.ignore_patterns("__pycache__"))
    build = tmp_path / "site"
    r = subprocess.run([sys.executable, "-c", "import sys, setuptools; sys.argv = ['setup.py', '-q', 'build_py', "
                        f"'--build-lib', {str(build)!r}]; setuptools.setup()"], cwd=src, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    assert {p.stem for p in (build / "engage" / "sensors" / "data").glob("*.toml")} == set(builtin_profiles())
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    code = ("import json, engage.sensors.profiles as p; print(p.__file__); "
            "print(json.dumps({n: len(p.load_profile(n).sensors) for n in p.builtin_profiles()}))")
    r = subprocess.run([sys.executable, "-c", code], cwd=elsewhere, capture_output=True, text=True, timeout=120,
                       env={**os.environ, "PYTHONPATH": str(build)})
    assert r.returncode == 0, r.stderr
    where, loaded = r.stdout.splitlines()
    assert where.startswith(str(build))
    assert json.loads(loaded) == {n: len(load_profile(n).sensors) for n in builtin_profiles()}


def test_an_include_cannot_reach_outside_the_profiles_folder(tmp_path):
    """A profile shared by someone else must not make engage read (and quote in its errors) any file the user
    can read: includes are confined to the including profile's folder, or are built-in names."""
    secret = tmp_path / "secret.toml"
    secret.write_text('[sensor.x]\nkind = "simulated"\nseed = "hunter2-password"\n')
    folder = tmp_path / "profiles"
    folder.mkdir()
    (folder / "link.toml").symlink_to(secret)
    for include in (str(secret), "../secret.toml", "link.toml", "sub/../../secret.toml"):
        p = folder / "p.toml"
        p.write_text(f'[profile]\ninclude = ["{include}"]\n[sensor.y]\nkind = "simulated"\n')
        with pytest.raises(ConfigError) as info:
            load_profile(p)
        message = str(info.value)
        assert "hunter2" not in message and ("outside the profile's folder" in message or "absolute" in message), \
            (include, message)
    (folder / "sub").mkdir()
    (folder / "sub" / "ok.toml").write_text('[sensor.z]\nkind = "simulated"\n')
    (folder / "p.toml").write_text('[profile]\ninclude = ["sub/ok.toml", "lsl-eeg"]\n')
    assert {s.name for s in load_profile(folder / "p.toml").sensors} >= {"z"}
