"""The fuzzers: every parser of input that engage did not write itself, with a seed corpus and mutations.

Each :class:`Target` turns bytes into a file (or a packet) and hands it to the parser the way engage does.
A parser may accept the input or refuse it with an :class:`~engage.core.errors.EngageError` (a typed error
with a message); any other exception is a bug, and so is a case that runs long or eats memory.
``tests/test_fuzz.py`` runs a few hundred cases per parser under hypothesis on every test run;
``benchmarks/fuzz.py`` runs them by the hundred thousand and reports unhandled exceptions, hangs and
memory.
"""

from __future__ import annotations

import io
import json
import math
import pickle
import random
import zlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable

import numpy as np

from engage.core.testing import test_data_dir


@dataclass(frozen=True)
class Target:
    """A parser under fuzzing: ``seeds()`` gives valid inputs, ``run(data, tmp)`` parses ``data``."""

    name: str
    seeds: Callable[[], list[bytes]]
    run: Callable[[bytes, Path], None]
    text: bool = False  # text formats also get text mutations (numbers, encodings, nesting)


def _write(tmp: Path, name: str, data: bytes) -> Path:
    path = tmp / name
    path.write_bytes(data)
    return path


# ---------------------------------------------------------------------------------------------- BLE


def _hrm_seeds() -> list[bytes]:
    from engage.sensors.ble.hrm import HeartRateMeasurement, encode_hrm

    return [encode_hrm(HeartRateMeasurement(hr, contact, energy, rr, hr16))
            for hr, contact, energy, rr, hr16 in [(60, None, None, (), False), (72, True, 10, (1024, 980), False),
                                                  (300, False, None, (600,) * 9, True), (0, True, 65535, (), True)]]


def _hrm_run(data: bytes, tmp: Path) -> None:
    from engage.sensors.ble.hrm import parse_hrm

    parse_hrm(data)


def _pmd_seeds() -> list[bytes]:
    from engage.sensors.ble.polar import encode_control_response, encode_ecg_frame

    return [encode_ecg_frame(123_456_789_000, [0, 10, -10, 2 ** 20]), encode_ecg_frame(0, list(range(-70, 70))),
            encode_control_response(0x02, 0x00), encode_control_response(0x02, 0x00, status=5)]


def _pmd_run(data: bytes, tmp: Path) -> None:
    from engage.core.errors import EngageError
    from engage.sensors.ble.polar import parse_control_response, parse_pmd_frame

    for parse in (parse_pmd_frame, parse_control_response):  # a notification may be either
        try:
            parse(data)
        except EngageError:
            pass


def _rr_seeds() -> list[bytes]:
    return [b"Phone timestamp;RR-interval [ms]\n2024-05-01T10:00:00.000;812\n2024-05-01T10:00:00.812;790\n"
            b"2024-05-01T10:00:01.602;805\n"]


def _rr_run(data: bytes, tmp: Path) -> None:
    from engage.sensors.ble.replay import RrReplay

    src = RrReplay.from_polar_logger(_write(tmp, "rr.txt", data))
    src.read(math.inf)


# ---------------------------------------------------------------------------------------------- recordings


def _engage_xdf() -> bytes:
    from engage.core import StreamInfo
    from engage.record.xdf import XdfWriter

    buf = io.BytesIO()
    w = XdfWriter(buf)
    eeg = StreamInfo("eeg", "EEG", ("a", "b"), ("uV", "uV"), 100.0, "s-eeg")
    mk = StreamInfo("mk", "Markers", ("m",), ("",), 0.0, "s-mk")
    t = 100.0 + np.arange(50) / 100.0
    a = w.add_stream(eeg)
    b = w.add_stream(mk, channel_format="string")
    w.write_samples(a, np.column_stack([np.sin(t), np.cos(t)]), t)
    w.write_samples(b, np.array([["start"], ['{"type":"scene.start"}']], dtype=object), np.array([100.1, 100.3]))
    w.close()
    return buf.getvalue()


def _xdf_seeds() -> list[bytes]:
    seeds = []
    seeds.append(_engage_xdf())
    root = test_data_dir()
    if root is not None:
        for name in ("minimal.xdf", "empty_streams.xdf"):
            p = root / "xdf_examples" / name
            if p.is_file() and p.stat().st_size < 2_000_000:
                seeds.append(p.read_bytes())
    return seeds


def _xdf_run(data: bytes, tmp: Path) -> None:
    from engage.sensors.replay import XdfReplay, scan_xdf

    path = _write(tmp, "f.xdf", data)
    scan_xdf(path)
    XdfReplay(path).read(math.inf)


def _csv_seeds() -> list[bytes]:
    return [b"timestamp,hr\n0.0,70\n1.0,71.5\n2.0,\n3.0,72\n",
            b"timestamp,eda,temp\n1000.00,0.11,33.1\n1000.25,0.12,33.1\n1000.50,0.13,33.2\n"]


def _csv_run(data: bytes, tmp: Path) -> None:
    from engage.sensors.replay import CsvReplay

    CsvReplay(_write(tmp, "f.csv", data), "HeartRate").read(math.inf)


def _e4_signal_seeds() -> list[bytes]:
    return [b"1644226061.000000\n4.000000\n0.000000\n0.112750\n0.166563\n0.170\n",
            b"1644226061.000000, 1644226061.000000, 1644226061.000000\n32.000000, 32.000000, 32.000000\n"
            b"-12.0, 3.0, 60.0\n-13.0, 3.0, 61.0\n"]


def _e4_signal_run(data: bytes, tmp: Path) -> None:
    from engage.datasets.e4 import read_e4_signal

    n_channels = 3 if data.count(b",", 0, 200) >= 2 else 1
    read_e4_signal(_write(tmp, "EDA.csv", data), n_channels)


def _e4_ibi_seeds() -> list[bytes]:
    return [b"1644226061.000000, IBI\n12.3, 0.81\n13.1, 0.80\n"]


def _e4_ibi_run(data: bytes, tmp: Path) -> None:
    from engage.datasets.e4 import read_e4_ibi

    read_e4_ibi(_write(tmp, "IBI.csv", data))


def _e4_tags_seeds() -> list[bytes]:
    return [b"1644226161.12\n1644226461.50\n", b""]


def _e4_tags_run(data: bytes, tmp: Path) -> None:
    from engage.datasets.e4 import read_e4_tags

    read_e4_tags(_write(tmp, "tags.csv", data))


def _pickle_seeds() -> list[bytes]:
    rng = np.random.default_rng(0)
    doc = {"signal": {"wrist": {"BVP": rng.normal(size=(16, 1)), "EDA": rng.random((4, 1)), "TEMP": np.full((4, 1), 33.0),
                                "ACC": rng.integers(-64, 64, (8, 3)).astype(np.float64)},
                      "chest": {"ECG": rng.normal(size=(28, 1)), "Resp": rng.normal(size=(28, 1))}},
           "label": np.array([0, 1, 1, 2], dtype=np.int32), "subject": "S2"}
    return [pickle.dumps(doc, protocol=p) for p in (2, 4)] + [pickle.dumps([np.arange(3.0)], protocol=0)]


def _pickle_run(data: bytes, tmp: Path) -> None:
    from engage.datasets.safepickle import read_array_pickle

    read_array_pickle(_write(tmp, "S2.pkl", data))


# ---------------------------------------------------------------------------------------------- configuration


def _profile_seeds() -> list[bytes]:
    from engage.sensors.profiles import builtin_profile_path, builtin_profiles

    return [builtin_profile_path(n).read_bytes() for n in builtin_profiles()]


def _profile_run(data: bytes, tmp: Path) -> None:
    from engage.sensors.profiles import load_profile

    load_profile(_write(tmp, "p.toml", data))


TEST_STORIES = Path(__file__).resolve().parents[1] / "stories"


def _story_seeds(suffix: str) -> Callable[[], list[bytes]]:
    def seeds() -> list[bytes]:
        from engage.narrative import story

        folder = story.default_story_path().parent
        found = [p.read_bytes() for f in (folder, TEST_STORIES) for p in sorted(f.glob(f"*{suffix}"))
                 if p.stat().st_size < 1_000_000]
        if suffix == ".yaml":  # the TOML stories, written as YAML
            import tomllib

            import yaml

            found += [yaml.safe_dump(tomllib.loads(p.read_text()), allow_unicode=True, sort_keys=False).encode()
                      for p in sorted(folder.glob("*.toml"))]
        return found

    return seeds


def _story_run(suffix: str) -> Callable[[bytes, Path], None]:
    def run(data: bytes, tmp: Path) -> None:
        from engage.narrative.story import load_story

        load_story(_write(tmp, f"story{suffix}", data))

    return run


def _ink_run(data: bytes, tmp: Path) -> None:
    """A compiled ink story loaded (checks, then the runtime in its budgeted worker) and played a little:
    the first option 30 times, every option peeked, a cut to each tagged cut_to - what story check and a
    session do."""
    from engage.narrative.ink import load_ink

    with load_ink(_write(tmp, "story.ink.json", data)) as player:
        scene = player.begin()
        for _ in range(30):
            options = player.options()
            for o in options:
                player.peek(o.id)
            cut = scene.tags.get("cut_to")
            if isinstance(cut, str) and cut in player.knots:
                player.peek_cut(cut)
            if not options:
                break
            scene = player.follow(options[-1].id if len(options) > 1 else options[0].id)
        player.facts()


#: ink runtime instructions and values a structural mutation puts into a compiled story
_INK_NODES = ["^text", "\n", "ev", "/ev", "out", "done", "end", "->->", "~ret", "nop", "str", "/str", "#", "/#", 7, 2.5,
              True, None, [], {}, {"->": "studio"}, {"->": "nowhere.at.all"}, {"->": ".^.^.^.^.9"}, {"f()": "studio"},
              {"f()": "tea"}, {"->t->": "letters"}, {"x()": "studio", "exArgs": 2}, {"VAR?": "nadia_alive"},
              {"VAR?": "ghost"}, {"VAR=": "knows_code"}, {"temp=": "x"}, {"CNT?": "studio"},
              {"*": ".^.c-9", "flg": 4}, {"#f": 99}, {"^->": "studio.0"}, {"list": {"a.b": 1}}, "+", "-", "/", "MIN",
              "LIST_ALL", "seq", {"->": "studio", "var": True}, {"->": "$r", "var": True}, {"#": "intensity: 9"}]


def _ink_structure_run(data: bytes, tmp: Path) -> None:
    """The sample ink story with 1-6 nodes replaced, inserted or deleted (chosen by ``data``): valid JSON,
    nonsense ink - what reaches the runtime itself, past every check of the file."""
    from engage.narrative.ink import sample_ink_path

    rng = random.Random(data)
    doc = json.loads(sample_ink_path().read_text(encoding="utf-8-sig"))
    containers, stack = [], [doc["root"]]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            containers.append(node)
            stack.extend(node)
        elif isinstance(node, dict):
            stack.extend(node.values())
    for _ in range(rng.randint(1, 6)):
        c = rng.choice(containers)
        i = rng.randrange(len(c) + 1)
        new = json.loads(json.dumps(rng.choice(_INK_NODES)))
        op = rng.randrange(3)
        if op == 0 and i < len(c):
            c[i] = new
        elif op == 1:
            c.insert(i, new)
        elif op == 2 and i < len(c):
            del c[i]
    _ink_run(json.dumps(doc).encode(), tmp)


def _llm_reply_seeds() -> list[bytes]:
    """What models wrote: rewrites bare, fenced, after a <think> block (the server fixtures' content)."""
    good = {"text": "Tea in chipped mugs. Tomas talks about his father.", "cast": ["Lena", "Tomas"], "exits": [],
            "directives": {"pacing": "slow", "palette": "amber", "music_intensity": 0.25, "stakes": "low"}}
    raw = json.dumps(good)
    return [raw.encode(), f"```json\n{raw}\n```".encode(), f"<think>ok</think>\n{raw}".encode(),
            f"Sure! Here it is: {raw} Hope it helps.".encode(),
            json.dumps({**good, "text": "Tomas sits up, alive.", "cast": ["Tomas", "Marco"]}).encode()]


def _llm_reply_run(data: bytes, tmp: Path) -> None:
    """The reply parser and the canon checks, as the LLM rewriter applies them."""
    from engage.narrative.canon import check_rewrite
    from engage.narrative.llm import parse_reply
    from engage.narrative.story import Scene

    text = data.decode("utf-8", "replace")
    reply = parse_reply(text)
    scene = Scene("tea", "Tea", "Tea in chipped mugs. Tomas talks about his father.", 0.2, "calm", 30.0, "amber",
                  ("Lena", "Tomas"), (), True, {"beats": "chipped mugs"})
    problems = check_rewrite(reply, scene, ("Lena", "Tomas", "Inspector Harlow"), ("decode",),
                             {"tomas_alive": False}, directives={"pacing": "slow", "palette": "amber",
                                                                 "music_intensity": 0.25, "stakes": "low"},
                             dying=("Tomas",))
    assert isinstance(problems, list)


# ---------------------------------------------------------------------------------------------- models


@lru_cache(maxsize=1)
def _model_bytes() -> bytes:
    import tempfile

    from engage.models.classifier import make_classifier
    from engage.models.persistence import save_model

    X = np.random.default_rng(0).normal(size=(40, 2))
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "m.skops"
        save_model(make_classifier("logistic", calibrate=False).fit(X, (X[:, 0] > 0).astype(int)), p, ("a", "b"),
                   "arousal", {"kind": "logistic"})
        return p.read_bytes()


def _model_run(data: bytes, tmp: Path) -> None:
    from engage.models.persistence import load_model

    load_model(_write(tmp, "m.skops", data))


TARGETS: dict[str, Target] = {t.name: t for t in [
    Target("ble-hrm", _hrm_seeds, _hrm_run),
    Target("ble-pmd", _pmd_seeds, _pmd_run),
    Target("rr-file", _rr_seeds, _rr_run, text=True),
    Target("xdf", _xdf_seeds, _xdf_run),
    Target("csv", _csv_seeds, _csv_run, text=True),
    Target("e4-signal", _e4_signal_seeds, _e4_signal_run, text=True),
    Target("e4-ibi", _e4_ibi_seeds, _e4_ibi_run, text=True),
    Target("e4-tags", _e4_tags_seeds, _e4_tags_run, text=True),
    Target("pickle", _pickle_seeds, _pickle_run),
    Target("profile", _profile_seeds, _profile_run, text=True),
    Target("story-toml", _story_seeds(".toml"), _story_run(".toml"), text=True),
    Target("story-yaml", _story_seeds(".yaml"), _story_run(".yaml"), text=True),
    Target("story-ink", _story_seeds(".ink.json"), _ink_run, text=True),
    Target("ink-structure", lambda: [b"0", b"1", b"2"], _ink_structure_run),
    Target("llm-reply", _llm_reply_seeds, _llm_reply_run, text=True),
    Target("model-file", lambda: [_model_bytes()], _model_run),
]}

# ---------------------------------------------------------------------------------------------- mutations

#: tokens that broke or may break parsers: numbers Python reads oddly, huge and deep values, control bytes
TOKENS = [b"--1", b"inf", b"-inf", b"nan", b"NaN", b"1e999", b"-0", b"1e17", b"1e308", b"0x1F", b"9" * 4400,
          b"\x00", b"\x1b[2J", b"\r", b"\n\n\n", b"\xff\xfe", b"\xef\xbb\xbf", b"\xc3(", b"\xe2\x80\xae",
          b"[" * 300, b"{" * 300, b'"a":' * 50, b"a." * 3000, b"&#0;", b"<![CDATA[", b"]]>", b"<x>" * 100,
          b"\"", b"'", b",", b";", b"=", b"#", b"%s%n", b"\\u0000", b"true", b"null", b"-1", b"4294967296",
          b"18446744073709551616", b"2147483648", b"-9223372036854775809"]


def mutate(data: bytes, rng: random.Random, text: bool = False, other: bytes | None = None) -> bytes:
    """One to eight random mutations of ``data`` (bytes-level; text-level too when ``text``)."""
    buf = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        op = rng.randrange(11 if text else 8)
        n = len(buf)
        at = rng.randrange(n + 1)
        if op == 0 and n:  # flip a bit
            i = rng.randrange(n)
            buf[i] ^= 1 << rng.randrange(8)
        elif op == 1 and n:  # an interesting byte
            buf[rng.randrange(n)] = rng.choice([0, 1, 0x7F, 0x80, 0xFF, 0x0A, 0x22, 0x2C])
        elif op == 2:  # insert random bytes
            buf[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 40)))
        elif op == 3 and n:  # delete a span
            del buf[at:at + rng.randint(1, max(1, n // 4))]
        elif op == 4 and n:  # duplicate a span
            span = buf[at:at + rng.randint(1, 256)]
            buf[at:at] = span * rng.randint(1, 20)
        elif op == 5:  # truncate
            del buf[rng.randrange(n + 1):]
        elif op == 6 and other:  # splice with another seed
            cut = rng.randrange(len(other) + 1)
            buf[at:] = other[cut:]
        elif op == 7 and n >= 4:  # overwrite with a big or negative little-endian integer
            value = rng.choice([0xFFFFFFFF, 0x7FFFFFFF, 0x80000000, 2 ** 31 + 1, 10 ** 9])
            i = rng.randrange(n - 3)
            buf[i:i + 4] = value.to_bytes(4, "little")
        elif op == 8:  # a token
            buf[at:at] = rng.choice(TOKENS)
        elif op == 9 and n:  # replace a number by a token
            i = rng.randrange(n)
            while i < n and not chr(buf[i]).isdigit():
                i += 1
            j = i
            while j < n and (chr(buf[j]).isdigit() or buf[j] in b".eE+-"):
                j += 1
            buf[i:j] = rng.choice(TOKENS[:12])
        elif op == 10:  # re-encode the whole text
            try:
                buf = bytearray(bytes(buf).decode("utf-8").encode(rng.choice(["utf-16", "utf-16-le", "latin-1",
                                                                                "cp1252", "utf-8-sig"])))
            except (UnicodeDecodeError, UnicodeEncodeError):
                buf = bytearray(zlib.compress(bytes(buf)))
    return bytes(buf)


def cases(target: Target, n: int, seed: int) -> list[bytes]:
    """``n`` fuzzed inputs for ``target`` (its seeds first, unmutated), deterministic for ``seed``."""
    rng = random.Random(f"{target.name}:{seed}")
    seeds = target.seeds() or [b""]
    out = list(seeds[:n])
    while len(out) < n:
        out.append(mutate(rng.choice(seeds), rng, target.text, rng.choice(seeds)))
    return out


def jsonable(data: bytes) -> str:
    """A short printable form of a failing case for reports."""
    return json.dumps(data[:200].decode("latin-1"))
