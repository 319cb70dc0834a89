"""Hostile dataset files (issue 25, items 3 and 6): pickle bombs are refused within a memory budget,
and fuzzed E4/CSV/pickle files give a DatasetError or load - never another exception.

The fuzz tests are hypothesis-based and bounded in time (a few seconds each, a fixed seed), so they
run in CI; ``benchmarks/fuzz.py`` runs them long."""

from __future__ import annotations

import os
import pickle
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from engage.datasets import Deap, DatasetError, StressPredict, Wesad, load_e4_folder, read_e4_ibi
from engage.datasets.e4 import read_e4_signal, read_e4_tags
from engage.datasets.safepickle import expanded_size, read_array_pickle

# ------------------------------------------------------------------ pickle bombs, written opcode by opcode


def _global(module: str, name: str) -> bytes:
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def _str(s: str) -> bytes:
    b = s.encode()
    return b"X" + struct.pack("<I", len(b)) + b


def _wesad_doc(wrist_bvp: bytes) -> bytes:
    """``{"signal": {"wrist": {"BVP": <wrist_bvp>}}}`` as protocol-2 opcodes."""
    return (b"\x80\x02}" + _str("signal") + b"}" + _str("wrist") + b"}" + _str("BVP") + wrist_bvp
            + b"s" + b"s" + b"s.")


#: 9 bytes: PROTO 2, None, LONG_BINPUT 100 000 000, STOP - the C unpickler sizes its memo to 1.6 GB
MEMO_BOMB = b"\x80\x02Nr" + struct.pack("<I", 100_000_000) + b"."
#: "empty" arrays reconstructed with a shape of 6 GB, four of them (24 GB), in a 300-byte pickle
_ONE_ARRAY = (_global("numpy.core.multiarray", "_reconstruct") + _global("numpy", "ndarray")
              + b"J" + struct.pack("<i", 2_000_000_000) + b"J" + struct.pack("<i", 3) + b"\x86"  # shape
              + b"C\x01b" + b"\x87R")  # dtype int8, a 3-tuple of arguments, REDUCE
RECONSTRUCT_BOMB = _wesad_doc(b"(" + _ONE_ARRAY * 4 + b"l")
#: a list of 100 references to a list of 100 references … four levels: 10⁸ floats once expanded
_LEVELS = b"G" + struct.pack(">d", 1.0) + b"q\x000"
for _k in range(4):
    _LEVELS += b"](" + b"h\x00" * 100 + b"eq\x00" + (b"0" if _k < 3 else b"")
SHARED_BOMB = _wesad_doc(_LEVELS)
BOMBS = {"memo": MEMO_BOMB, "reconstruct": RECONSTRUCT_BOMB, "shared-references": SHARED_BOMB}


def test_bombs_are_small():
    assert len(MEMO_BOMB) == 9 and len(RECONSTRUCT_BOMB) < 1000 and len(SHARED_BOMB) < 1500


def _limited_python(code: str, *args: str, headroom_mb: int = 400) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter whose address space may grow only ``headroom_mb`` past
    what importing engage.datasets takes (a bomb then fails with MemoryError instead of eating the
    machine)."""
    prelude = textwrap.dedent(f"""
        import resource, sys
        import engage.datasets
        vm = int(next(l for l in open('/proc/self/status') if l.startswith('VmSize')).split()[1]) * 1024
        limit = vm + ({headroom_mb} << 20)
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    """)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p), "OPENBLAS_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-c", prelude + textwrap.dedent(code), *args], capture_output=True,
                          text=True, env=env, timeout=120)


@pytest.mark.timeout(300)
@pytest.mark.parametrize("name", sorted(BOMBS))
def test_pickle_bombs_in_a_wesad_folder_are_refused_within_budget(tmp_path, name):
    (tmp_path / "S2").mkdir()
    (tmp_path / "S2" / "S2.pkl").write_bytes(BOMBS[name])
    r = _limited_python("""
        from engage.datasets import Wesad, DatasetError
        try:
            Wesad(sys.argv[1]).load("S2")
        except DatasetError as exc:
            print("refused:", exc)
        except MemoryError:
            print("MemoryError")
            sys.exit(3)
        print("peak MB", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)
    """, str(tmp_path))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "refused: " in r.stdout and "S2.pkl" in r.stdout, r.stdout


@pytest.mark.timeout(300)
def test_engage_train_on_a_wesad_bomb_is_a_clear_error(tmp_path):
    (tmp_path / "S2").mkdir()
    (tmp_path / "S2" / "S2.pkl").write_bytes(MEMO_BOMB)
    r = _limited_python("""
        from engage.cli import main
        sys.exit(main(sys.argv[1:]))
    """, "train", "--dataset", "wesad", "--root", str(tmp_path), "--out", str(tmp_path / "m.skops"),
        "--n-jobs", "1", "--cache", "", headroom_mb=600)
    assert r.returncode == 2, r.stdout + r.stderr[-2000:]
    assert "engage: error: " in r.stderr and "S2.pkl: " in r.stderr and "Traceback" not in r.stderr


def test_real_shaped_pickles_still_load(tmp_path):
    doc = {"signal": {"wrist": {"BVP": np.arange(10.0)[:, None]}}, "label": np.arange(5, dtype=np.int32),
           "subject": "S2", "ratings": [1.0, 2.0], "scalar": np.float64(3.5)}
    for protocol in (0, 2, 4, 5):
        p = tmp_path / f"p{protocol}.pkl"
        p.write_bytes(pickle.dumps(doc, protocol=protocol))
        out = read_array_pickle(p)
        assert out["signal"]["wrist"]["BVP"].shape == (10, 1) and out["label"].dtype == np.int32
        assert out["scalar"] == 3.5 and out["subject"] == "S2"


def test_expanded_size_counts_every_reference():
    a = np.zeros(1000)
    assert expanded_size([a, a, a], 1e9) == 3 * 8000 + 24
    loop: list = []
    loop.append(loop)
    for bad in ([a] * 200, loop, [[[[[[]]]]]]):
        with pytest.raises(ValueError):
            expanded_size(bad, 1e5, max_depth=4)


@pytest.mark.parametrize("payload", [
    pickle.dumps(np.array([object(), 1], dtype=object)[1:], protocol=2),  # object arrays
    b"\x80\x04\x96" + struct.pack("<Q", 1 << 40) + b".",                   # BYTEARRAY8 of a terabyte
    b"\x80\x04\x8e" + struct.pack("<Q", 1 << 40) + b".",                   # BINBYTES8 of a terabyte
    b"\x80\x04\x95" + struct.pack("<Q", 1 << 40) + b"N.",                  # a terabyte FRAME
    _global("numpy", "ndarray") + b"(J\x00\xe1\xf5\x05tR.",                # ndarray((10**8,)) called directly
    _global("os", "system") + b"(X\x04\x00\x00\x00trueutR.",               # code
    b"(" * 100_000 + b".",                                                 # deep marks
    b"]q\x00h\x00a.",                                                     # a list containing itself
])
def test_malformed_and_hostile_pickles_are_dataset_errors(tmp_path, payload):
    p = tmp_path / "s01.dat"
    p.write_bytes(payload)
    with pytest.raises(DatasetError, match=r"s01\.dat: "):
        Deap(tmp_path).load("s01")


# ------------------------------------------------------------------ fuzzing (bounded)

FUZZ = settings(max_examples=150, deadline=None, derandomize=True, database=None,
                suppress_health_check=list(HealthCheck))


def _mutate(data: bytes, edits: list[tuple[int, int, bytes]]) -> bytes:
    b = bytearray(data)
    for pos, kind, chunk in edits:
        i = pos % (len(b) + 1)
        if kind == 0:
            b[i:i + len(chunk)] = chunk  # overwrite
        elif kind == 1:
            b[i:i] = chunk  # insert
        else:
            del b[i:i + len(chunk)]  # delete
    return bytes(b)


EDITS = st.lists(st.tuples(st.integers(0, 1 << 20), st.integers(0, 2), st.binary(min_size=1, max_size=8)),
                 min_size=1, max_size=6)


def _loads_or_dataset_error(fn, *args):
    try:
        fn(*args)
    except DatasetError as exc:
        assert str(exc)  # a message naming the problem


@pytest.fixture(scope="module")
def small_pickles(tmp_path_factory):
    rng = np.random.default_rng(0)
    root = tmp_path_factory.mktemp("pickles")
    wesad = {"subject": "S2", "label": np.repeat([1, 2], 700),
             "signal": {"chest": {"ECG": rng.normal(size=(1400, 1)), "Resp": rng.normal(size=(1400, 1))},
                        "wrist": {"BVP": rng.normal(size=(128, 1)), "EDA": rng.random((8, 1)),
                                  "TEMP": np.full((8, 1), 33.0), "ACC": rng.normal(size=(64, 3))}}}
    deap = {"data": rng.normal(size=(2, 40, 64)), "labels": rng.uniform(1, 9, (2, 4))}
    return {"wesad": pickle.dumps(wesad, protocol=2), "deap": pickle.dumps(deap, protocol=2),
            "wesad4": pickle.dumps(wesad, protocol=4)}, root


@pytest.mark.timeout(120)
@FUZZ
@given(which=st.sampled_from(["wesad", "deap", "wesad4"]), edits=EDITS)
def test_fuzzed_pickles(small_pickles, which, edits):
    blobs, root = small_pickles
    data = _mutate(blobs[which], edits)
    if which.startswith("wesad"):
        (root / "S2").mkdir(exist_ok=True)
        (root / "S2" / "S2.pkl").write_bytes(data)
        _loads_or_dataset_error(Wesad(root).load, "S2")
    else:
        (root / "s01.dat").write_bytes(data)
        _loads_or_dataset_error(Deap(root).load, "s01")


E4_FILES = {
    "EDA.csv": "1495437325.000000\n4.000000\n0.000000\n0.176893\n0.195059\n0.201461\n",
    "BVP.csv": "1495437325.000000\n64.000000\n0.00\n-0.00\n-0.01\n-0.02\n",
    "TEMP.csv": "1495437325.000000\n4.000000\n30.83\n30.83\n30.81\n",
    "ACC.csv": "1495437325.000000, 1495437325.000000, 1495437325.000000\n32.000000, 32.000000, 32.000000\n"
               "-63, 9, 11\n-63, 9, 12\n",
    "HR.csv": "1495437335.000000\n1.000000\n81.00\n82.50\n",
    "IBI.csv": "1495437325.000000, IBI\n12.531509,0.828188\n13.312793,0.781284\n",
    "tags_S02.csv": "1495437500.01\n1495437600.5\n",
}
NUMBERS = st.sampled_from(["--1", "inf", "-inf", "nan", "1e400", "1e-400", "0x1p3", "１", "1_0", "", " ", "1,2",
                           "\x00", "9" * 5000, "-0", "+", "e5", "1e99999999999"])


def _e4_folder(root: Path, files: dict[str, bytes]) -> Path:
    folder = root / "Raw_data" / "S02"
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return folder


@pytest.mark.timeout(120)
@FUZZ
@given(name=st.sampled_from(sorted(E4_FILES)), edits=EDITS, number=NUMBERS, line=st.integers(0, 6),
       encoding=st.sampled_from(["utf-8", "utf-16", "latin-1", "cp1252", "utf-8-sig", "utf-32"]))
def test_fuzzed_e4_exports(tmp_path_factory, name, edits, number, line, encoding):
    root = tmp_path_factory.mktemp("e4")
    lines = E4_FILES[name].split("\n")
    lines[line % len(lines)] = number
    text = "\n".join(lines)
    try:
        data = text.encode(encoding)
    except UnicodeEncodeError:
        data = text.encode("utf-8")
    files = {k: v.encode() for k, v in E4_FILES.items()}
    files[name] = _mutate(data, edits) if edits[0][1] != 2 else data
    folder = _e4_folder(root, files)
    _loads_or_dataset_error(load_e4_folder, folder, "S02")
    _loads_or_dataset_error(read_e4_tags, folder / "tags_S02.csv")
    _loads_or_dataset_error(read_e4_ibi, folder / "IBI.csv")
    _loads_or_dataset_error(read_e4_signal, folder / "ACC.csv", 3)


LABELS = "Participant,Time(sec),Label\n2,1495437325,0\n2,1495437326,0\n2,1495437327,1\n"


@pytest.mark.timeout(120)
@FUZZ
@given(edits=EDITS, number=NUMBERS, cell=st.integers(0, 8),
       encoding=st.sampled_from(["utf-8", "utf-16", "latin-1"]))
def test_fuzzed_stress_predict_labels(tmp_path_factory, edits, number, cell, encoding):
    root = tmp_path_factory.mktemp("sp")
    _e4_folder(root, {k: v.encode() for k, v in E4_FILES.items()})
    rows = [r.split(",") for r in LABELS.strip().split("\n")]
    rows[1 + cell // 3][cell % 3] = number
    text = "\n".join(",".join(r) for r in rows) + "\n"
    (root / "Processed_data").mkdir()
    (root / "Processed_data" / "Improved_All_Combined_hr_rsp_binary.csv").write_bytes(
        _mutate(text.encode(encoding, "replace"), edits))

    def load():
        ds = StressPredict(root)
        for s in ds.subjects():
            ds.load(s)

    _loads_or_dataset_error(load)


CASE_PHYS = "daqtime,ecg,bvp,gsr,rsp,skt,emg_zygo,emg_coru,emg_trap,video\n" + "".join(
    f"{i},0.1,35.1,5.0,30,31.5,0,0,0,{1 if i < 5 else 10}\n" for i in range(10))
CASE_ANN = "jstime,valence,arousal,video\n" + "".join(f"{i * 50},5.0,{4 + i % 3}.5,{1 if i < 5 else 10}\n"
                                                     for i in range(10))


@pytest.mark.timeout(120)
@FUZZ
@given(which=st.sampled_from(["physiological", "annotations"]), edits=EDITS, number=NUMBERS, cell=st.integers(0, 40),
       encoding=st.sampled_from(["utf-8", "utf-16", "latin-1"]))
def test_fuzzed_case_files(tmp_path_factory, which, edits, number, cell, encoding):
    from engage.datasets import Case

    root = tmp_path_factory.mktemp("case")
    texts = {"physiological": CASE_PHYS, "annotations": CASE_ANN}
    rows = [r.split(",") for r in texts[which].strip().split("\n")]
    rows[1 + cell % (len(rows) - 1)][cell % len(rows[0])] = number
    texts[which] = "\n".join(",".join(r) for r in rows) + "\n"
    for sub, text in texts.items():
        (root / sub).mkdir()
        data = text.encode(encoding, "replace") if sub == which else text.encode()
        (root / sub / "sub_1.csv").write_bytes(_mutate(data, edits) if sub == which else data)

    def load():
        ds = Case(root)
        for s in ds.subjects():
            ds.load(s)

    _loads_or_dataset_error(load)
