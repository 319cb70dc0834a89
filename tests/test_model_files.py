"""A model file must be as safe to open as a CSV: hostile ``.skops`` files built the ways published skops
advisories (CVE-2024-37065, CVE-2025-54412, CVE-2025-54413) and our own audit describe are refused before
anything in them runs, with a message that says why; every model ``engage train`` can write still loads."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

import engage.models.persistence as persistence
from engage.models.classifier import KINDS, make_classifier
from engage.models.persistence import ALLOWED_TYPES, ModelFileError, load_model, save_model


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> Path:
    p = tmp_path_factory.mktemp("m") / "m.skops"
    X = np.random.default_rng(0).normal(size=(60, 2))
    save_model(make_classifier("logistic").fit(X, (X[:, 0] > 0).astype(int)), p, ("a", "b"), "arousal",
               {"kind": "logistic", "n": 3, "ba": 0.7, "ok": True, "none": None})
    return p


def _members(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as z:
        return {n: z.read(n) for n in z.namelist()}


def _write(path: Path, files: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for name, data in files.items():
            z.writestr(name, data)
    return path


def _with_info(saved: Path, out: Path, node: dict, arrays: dict[str, bytes] | None = None) -> Path:
    """A copy of a real model file with ``node`` planted in its ``info`` dict (built before the model)."""
    files = _members(saved)
    schema = json.loads(files["schema.json"])
    schema["content"]["info"]["content"]["payload"] = node
    schema["content"]["info"]["key_types"]["content"].append({"__class__": "str", "__module__": "builtins",
                                                              "__loader__": "TypeNode", "__id__": 1})
    files["schema.json"] = json.dumps(schema).encode()
    files.update(arrays or {})
    return _write(out, files)


def _json(value) -> dict:
    return {"__class__": "str", "__module__": "builtins", "__loader__": "JsonNode", "content": json.dumps(value),
            "is_json": True, "__id__": 2}


def _tuple(*items) -> dict:
    return {"__class__": "tuple", "__module__": "builtins", "__loader__": "TupleNode", "content": list(items),
            "__id__": 3}


def _empty_dict() -> dict:
    return {"__class__": "dict", "__module__": "builtins", "__loader__": "DictNode", "content": {},
            "key_types": {"__class__": "list", "__module__": "builtins", "__loader__": "ListNode", "content": [],
                          "__id__": 5}, "__id__": 4}


def _code(marker: Path) -> str:
    return f"open({str(marker)!r}, 'w').write('ran')"


def _runstring_via_constructor(marker: Path) -> dict:
    """The reported hole: ``numpy.testing._private.utils.runstring`` is ``exec``, trusted by the ``numpy.``
    prefix, and a ConstructorFromReduceNode calls it with arguments from the file."""
    return {"__class__": "runstring", "__module__": "numpy.testing._private.utils",
            "__loader__": "ConstructorFromReduceNode", "content": _tuple(_json(_code(marker)), _empty_dict()),
            "__id__": 10}


def _runstring_via_loss_node(marker: Path) -> dict:
    """A reduce node of a kind engage's models do use (LossNode) whose constructor is ``exec``."""
    return {"__class__": "runstring", "__module__": "numpy.testing._private.utils", "__loader__": "LossNode",
            "__reduce__": {"args": _tuple(_json(_code(marker)), _empty_dict())}, "content": _empty_dict(),
            "__id__": 11}


def _operator_call(marker: Path) -> dict:
    """CVE-2025-54412's shape: an ``operator`` function node that calls a function named elsewhere."""
    fn = {"__class__": "runstring", "__module__": "numpy.testing._private.utils", "__loader__": "FunctionNode",
          "__id__": 12}
    return {"__class__": "call", "__module__": "operator", "__loader__": "OperatorFuncNode",
            "attrs": _tuple(fn, _json(_code(marker)), _empty_dict()), "__id__": 13}


def _method_node(marker: Path) -> dict:
    """CVE-2025-54413's shape: a method node reaching an attribute of an object of a trusted type."""
    obj = {"__class__": "StandardScaler", "__module__": "sklearn.preprocessing._data", "__loader__": "ObjectNode",
           "content": _empty_dict(), "__id__": 14}
    return {"__class__": "StandardScaler", "__module__": "sklearn.preprocessing._data", "__loader__": "MethodNode",
            "content": {"func": "__init__.__globals__", "obj": obj}, "__id__": 15}


def _generator_calling(name: str) -> dict:
    """A random generator whose bit generator is any ``numpy.random`` attribute: skops calls it."""
    state = {"__class__": "dict", "__module__": "builtins", "__loader__": "DictNode",
             "content": {"bit_generator": _json(name), "state": _empty_dict()},
             "key_types": {"__class__": "list", "__module__": "builtins", "__loader__": "ListNode", "content": [],
                           "__id__": 17}, "__id__": 16}
    return {"__class__": "Generator", "__module__": "numpy.random._generator", "__loader__": "RandomGeneratorNode",
            "content": {"bit_generator": state, "seed_seq": _empty_dict()}, "__id__": 18}


def _naive_load(path: Path) -> None:
    """What the loader used to do for such types: trust whatever skops lists (they all start with ``numpy.``)."""
    import skops.io as sio

    try:
        sio.load(path, trusted=sio.get_untrusted_types(file=path))
    except Exception:  # noqa: BLE001 - the payload has run by then; what skops does afterwards does not matter
        pass


@pytest.mark.parametrize("build", [_runstring_via_constructor, _runstring_via_loss_node])
def test_hostile_constructor_calls_would_run_code_and_are_refused(saved, tmp_path, build):
    proof = tmp_path / "proof"
    _naive_load(_with_info(saved, tmp_path / "proof.skops", build(proof)))
    assert proof.read_text() == "ran"  # the fixture is a real exploit under prefix trust
    marker = tmp_path / "pwned"
    evil = _with_info(saved, tmp_path / "evil.skops", build(marker))
    with pytest.raises(ModelFileError, match=r"evil.skops: refused - the file contains (a \w+Node \(|untrusted "
                                             r"type\(s\) )numpy.testing._private.utils.runstring"):
        load_model(evil)
    assert not marker.exists()


@pytest.mark.parametrize("build,kind", [(_operator_call, "OperatorFuncNode"), (_method_node, "MethodNode")])
def test_function_operator_and_method_nodes_are_refused(saved, tmp_path, build, kind):
    marker = tmp_path / "pwned"
    with pytest.raises(ModelFileError, match=f"refused - the file contains a {kind}"):
        load_model(_with_info(saved, tmp_path / "evil.skops", build(marker)))
    assert not marker.exists()


def test_a_random_generator_may_name_only_a_bit_generator(saved, tmp_path):
    with pytest.raises(ModelFileError, match="random generator names 'seed'"):
        load_model(_with_info(saved, tmp_path / "evil.skops", _generator_calling("seed")))


def test_types_outside_the_allowlist_are_refused_even_under_a_trusted_prefix(saved, tmp_path):
    node = {"__class__": "TempMemmap", "__module__": "sklearn.utils._testing", "__loader__": "ObjectNode",
            "content": _empty_dict(), "__id__": 19}
    with pytest.raises(ModelFileError, match=r"untrusted type\(s\) sklearn.utils._testing.TempMemmap"):
        load_model(_with_info(saved, tmp_path / "evil.skops", node))


def _npy_header(shape: tuple, descr: str) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": descr, "fortran_order": False, "shape": shape})
    return buf.getvalue()


def test_arrays_that_claim_more_than_they_hold_or_hold_objects_are_refused(saved, tmp_path):
    files = _members(saved)
    npy = next(n for n in files if n.endswith(".npy"))
    files[npy] = _npy_header((10 ** 12,), "<f8") + b"\x00" * 16
    with pytest.raises(ModelFileError, match=r"damaged array .*claims 8000000000000 bytes"):
        load_model(_write(tmp_path / "huge.skops", files))
    files[npy] = _npy_header((1,), "|O") + b"\x00" * 16
    with pytest.raises(ModelFileError, match="holds Python objects"):
        load_model(_write(tmp_path / "objects.skops", files))
    files[npy] = b"\x93NUMPY\x01\x00\xff\xff" + b"{" * 100
    with pytest.raises(ModelFileError, match="damaged array"):
        load_model(_write(tmp_path / "header.skops", files))


def test_an_archive_that_unpacks_too_large_is_refused_before_it_is_read(saved, tmp_path, monkeypatch):
    files = _members(saved)
    files["padding.bin"] = bytes(3 << 20)  # compresses to a few kB
    bomb = _write(tmp_path / "bomb.skops", files)
    monkeypatch.setattr(persistence, "MAX_UNCOMPRESSED_BYTES", 2 << 20)
    with pytest.raises(ModelFileError, match="bomb.skops: refused - the archive unpacks to 3 MB"):
        load_model(bomb)


@pytest.mark.parametrize("depth", [300, 100_000])
def test_a_deeply_nested_schema_is_refused_cleanly(saved, tmp_path, depth):
    files = _members(saved)
    schema = json.loads(files["schema.json"])
    schema["content"]["info"]["content"]["deep"] = "@"
    text = json.dumps(schema).replace('"@"', "[" * depth + "]" * depth)
    files["schema.json"] = text.encode()
    with pytest.raises(ModelFileError, match="nested deeper|damaged or tampered"):
        load_model(_write(tmp_path / "deep.skops", files))


def test_an_archive_without_a_schema_is_not_a_model(tmp_path):
    with pytest.raises(ModelFileError, match="no schema.json"):
        load_model(_write(tmp_path / "empty.skops", {"a.npy": b""}))


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("calibrate", [True, False])
def test_every_model_engage_train_writes_needs_only_allowed_types_and_loads(tmp_path, kind, calibrate):
    """Trains each kind and walks its file: the allowlist is exact, and this test shows when scikit-learn's
    internals change what a model file contains."""
    rng = np.random.default_rng(1)
    X = rng.normal(size=(120, 3))
    X[::9, 1] = np.nan
    y = (X[:, 0] + 0.5 * rng.normal(size=120) > 0).astype(int)
    p = tmp_path / "m.skops"
    model = make_classifier(kind, calibrate=calibrate).fit(X, y)
    save_model(model, p, ("a", "b", "c"), "arousal", {"kind": kind, "ba": float(0.7), "subjects": ["S01"]})
    schema = json.loads(_members(p)["schema.json"])
    stack, used = [schema], set()
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if "__loader__" in node:
                used.add((node["__loader__"], f"{node['__module__']}.{node['__class__']}"))
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    assert sorted((k, t) for k, t in used if t not in ALLOWED_TYPES.get(k, ())) == []
    loaded = load_model(p, expected_features=("a", "b", "c"))
    np.testing.assert_array_equal(loaded.model.predict_proba(X), model.predict_proba(X))


def test_the_shipped_model_still_loads():
    from engage.models.evaluation import load_shipped

    assert load_shipped().model is not None


@pytest.mark.realdata
def test_replay_with_a_hostile_model_refuses_it_and_runs_nothing(saved, tmp_path, shared_data):
    import subprocess
    import sys

    marker = tmp_path / "pwned"
    evil = _with_info(saved, tmp_path / "evil.skops", _runstring_via_constructor(marker))
    r = subprocess.run([sys.executable, "-m", "engage", "replay", str(shared_data / "xdf_examples" / "minimal.xdf"),
                        "--model", str(evil), "--out", str(tmp_path / "out")], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 2, r.stderr
    assert "evil.skops: refused - the file contains a ConstructorFromReduceNode" in r.stderr
    assert "Traceback" not in r.stderr
    assert not marker.exists()
