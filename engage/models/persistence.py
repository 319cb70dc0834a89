"""Saving and loading trained models with skops - never pickle.

A model file is a skops archive of one dict: ``format`` (``"engage-model"``), ``format_version``,
``features`` (the input channel names, in order), ``target``, the versions of engage,
scikit-learn and skops that wrote it, free ``info`` (training data, metrics) and ``model`` (a
scikit-learn estimator).

Models are shared between labs, so opening one must be as safe as opening a CSV. skops itself only
builds the types its caller trusts, but it calls what it builds: a type trusted by a prefix such as
``numpy.`` lets a file call ``numpy.testing._private.utils.runstring`` (``exec``) with arguments of
its choosing. :func:`load_model` therefore trusts nothing by prefix. Before skops sees the file it
checks, and refuses with a :class:`ModelFileError` naming the file and the problem:

* that the file is a zip archive of bounded size (no zip bomb) whose arrays are plain numbers of
  the size their headers claim (no object arrays, no header that claims gigabytes);
* every node of the archive's ``schema.json``: its kind must be one that engage's models use
  (``ObjectNode``, ``NdArrayNode``, ``DictNode`` …; never a function, method, ``operator`` or
  reduce-constructor node) and its type must be in :data:`ALLOWED_TYPES` - exactly the types that
  the models ``engage train`` writes contain, for that kind of node;
* a random generator names one of NumPy's bit generators;
* then what skops itself reports as untrusted must be in the same allowlist, and only that is
  passed to ``skops.io.load``.

After loading it refuses a skops file that is not an engage model, a newer format, and features
that differ from the ones the caller will feed (``expected_features``). A different scikit-learn
minor version is logged as a warning (the file usually still works; retrain to be sure).

>>> import tempfile, pathlib
>>> from sklearn.linear_model import LogisticRegression
>>> p = pathlib.Path(tempfile.mkdtemp()) / "m.skops"
>>> m = LogisticRegression().fit([[0.0], [1.0]], [0, 1])
>>> save_model(m, p, features=("z_hr_mean",), target="stress")
>>> load_model(p, expected_features=("z_hr_mean",)).features
('z_hr_mean',)
"""

from __future__ import annotations

import json
import logging
import os
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from engage.core import EngageError

log = logging.getLogger(__name__)

FORMAT = "engage-model"
FORMAT_VERSION = 1

_JSON_SCALARS = frozenset({"builtins.str", "builtins.int", "builtins.float", "builtins.bool", "builtins.NoneType"})
_NUMPY_SCALARS = frozenset({"numpy.float64", "numpy.float32", "numpy.int64", "numpy.int32", "numpy.uint64",
                            "numpy.uint32", "numpy.bool", "numpy.bool_"})
#: For each kind of skops node, exactly the types (``module.name``) that a model written by
#: ``engage train`` (logistic, boosting or ensemble, calibrated or not) contains in such a node.
#: ``tests/test_model_files.py`` trains every kind and checks that nothing outside this is needed.
ALLOWED_TYPES: dict[str, frozenset[str]] = {
    "DictNode": frozenset({"builtins.dict", "sklearn.utils._bunch.Bunch"}),
    "ListNode": frozenset({"builtins.list"}),
    "TupleNode": frozenset({"builtins.tuple"}),
    "JsonNode": _JSON_SCALARS,
    "TypeNode": _JSON_SCALARS,
    "DTypeNode": frozenset({"numpy.dtype"}),
    "NdArrayNode": frozenset({"numpy.ndarray"}) | _NUMPY_SCALARS,
    "RandomGeneratorNode": frozenset({"numpy.random._generator.Generator"}),
    "LossNode": frozenset({"sklearn._loss._loss.CyHalfBinomialLoss"}),
    "ObjectNode": frozenset({
        "engage.models.classifier.Clip",
        "sklearn._loss.link.Interval",
        "sklearn._loss.link.LogitLink",
        "sklearn._loss.loss.HalfBinomialLoss",
        "sklearn.calibration.CalibratedClassifierCV",
        "sklearn.calibration._CalibratedClassifier",
        "sklearn.calibration._SigmoidCalibration",
        "sklearn.ensemble._hist_gradient_boosting.binning._BinMapper",
        "sklearn.ensemble._hist_gradient_boosting.gradient_boosting.HistGradientBoostingClassifier",
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
        "sklearn.ensemble._voting.VotingClassifier",
        "sklearn.impute._base.SimpleImputer",
        "sklearn.linear_model._logistic.LogisticRegression",
        "sklearn.pipeline.Pipeline",
        "sklearn.preprocessing._data.StandardScaler",
        "sklearn.preprocessing._label.LabelEncoder",
    }),
}
_ALL_ALLOWED = frozenset().union(*ALLOWED_TYPES.values())
#: the bit generators a saved ``numpy.random.Generator`` may name (skops calls ``numpy.random.<name>``)
BIT_GENERATORS = frozenset({"PCG64", "PCG64DXSM", "MT19937", "Philox", "SFC64"})
#: bounds on what a model file may unpack to (the shipped model: 937 members, about 2 MB)
MAX_MEMBERS = 200_000
MAX_UNCOMPRESSED_BYTES = 1 << 30
MAX_SCHEMA_BYTES = 256 << 20
MAX_DEPTH = 200


class ModelFileError(EngageError):
    """A model file that cannot be used (names the file and why)."""


@dataclass
class LoadedModel:
    """A model loaded from a file, with what the file says about it."""

    model: Any
    features: tuple[str, ...]
    target: str
    versions: dict[str, str]
    info: dict = field(default_factory=dict)
    path: Path | None = None


def _versions() -> dict[str, str]:
    import sklearn
    import skops

    from engage import __version__

    return {"engage": __version__, "sklearn": sklearn.__version__, "skops": skops.__version__}


def save_model(model: Any, path: str | os.PathLike, features: Sequence[str], target: str,
               info: dict | None = None) -> None:
    """Write ``model`` (a fitted scikit-learn estimator) and its metadata to a skops file."""
    import skops.io as sio

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {"format": FORMAT, "format_version": FORMAT_VERSION, "features": list(features), "target": target,
           "versions": _versions(), "info": info or {}, "model": model}
    sio.dump(doc, path, compression=zipfile.ZIP_DEFLATED)


def _check_arrays(z: zipfile.ZipFile, path: Path) -> None:
    """Every ``.npy`` member holds plain numbers, as many as its header claims and no more."""
    import numpy as np

    for info in z.infolist():
        if not info.filename.endswith(".npy"):
            continue
        with z.open(info) as fh:
            try:
                version = np.lib.format.read_magic(fh)
                read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
                    np.lib.format.read_array_header_2_0
                shape, _, dtype = read_header(fh, max_header_size=10_000)
            except Exception as exc:  # noqa: BLE001 - a malformed header is a damaged file
                raise ModelFileError(f"{path}: damaged array {info.filename} ({exc})") from None
        if dtype.hasobject:
            raise ModelFileError(f"{path}: refused - array {info.filename} holds Python objects, not numbers")
        size = dtype.itemsize
        for n in shape:
            size *= int(n)
        if size > info.file_size:
            raise ModelFileError(f"{path}: damaged array {info.filename}: its header claims {size} bytes, "
                                 f"the archive holds {info.file_size}")


def _check_schema(schema: Any, path: Path) -> None:
    """Every node of the skops schema is of a kind and type on the allowlist (walked without recursion)."""
    stack: list[tuple[Any, int]] = [(schema, 0)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise ModelFileError(f"{path}: refused - the model's structure is nested deeper than {MAX_DEPTH} levels")
        if isinstance(node, list):
            stack.extend((v, depth + 1) for v in node)
            continue
        if not isinstance(node, dict):
            continue
        loader = node.get("__loader__")
        if loader is not None:
            name = f"{node.get('__module__')}.{node.get('__class__')}"
            allowed = ALLOWED_TYPES.get(str(loader))
            if allowed is None:
                raise ModelFileError(f"{path}: refused - the file contains a {loader} ({name}); engage's models "
                                     "hold no functions, methods or constructor calls")
            if name not in allowed:
                raise ModelFileError(f"{path}: refused - the file contains untrusted type(s) {name} (a {loader}); "
                                     "only the types of the models `engage train` writes are loaded")
            if loader == "NdArrayNode" and node.get("type", "numpy") != "numpy":
                raise ModelFileError(f"{path}: refused - an array stored as {node.get('type')!r}, not as numbers")
            if loader == "RandomGeneratorNode":
                bitgen = _json_value(node, ("content", "bit_generator", "content", "bit_generator"))
                if bitgen not in BIT_GENERATORS:
                    raise ModelFileError(f"{path}: refused - a random generator names {bitgen!r}, "
                                         "not one of NumPy's bit generators")
        stack.extend((v, depth + 1) for v in node.values())


def _json_value(node: dict, keys: tuple[str, ...]) -> Any:
    for key in keys:
        node = node.get(key) if isinstance(node, dict) else None
    if isinstance(node, dict) and node.get("__loader__") == "JsonNode":
        try:
            return json.loads(node.get("content", "null"))
        except (TypeError, ValueError):
            return None
    return None


def _open_checked(path: Path) -> list[str]:
    """The checks done before skops reads the file (see the module docstring); returns the types to trust."""
    import skops.io as sio

    try:
        with zipfile.ZipFile(path) as z:
            members = z.infolist()
            if len(members) > MAX_MEMBERS:
                raise ModelFileError(f"{path}: refused - {len(members)} files in the archive (at most {MAX_MEMBERS})")
            total = sum(m.file_size for m in members)
            if total > MAX_UNCOMPRESSED_BYTES:
                raise ModelFileError(f"{path}: refused - the archive unpacks to {total / 1e6:.0f} MB "
                                     f"(at most {MAX_UNCOMPRESSED_BYTES / 1e6:.0f} MB)")
            try:
                info = z.getinfo("schema.json")
            except KeyError:
                raise ModelFileError(f"{path}: not a skops model file (no schema.json)") from None
            if info.file_size > MAX_SCHEMA_BYTES:
                raise ModelFileError(f"{path}: refused - schema.json is {info.file_size / 1e6:.0f} MB")
            schema = json.loads(z.read(info))
            _check_arrays(z, path)
    except ModelFileError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, OSError, ValueError, RecursionError, EOFError,
            NotImplementedError) as exc:  # a damaged archive or schema
        raise ModelFileError(f"{path}: damaged or tampered skops file ({type(exc).__name__}: {exc})") from None
    _check_schema(schema, path)
    try:
        untrusted = sio.get_untrusted_types(file=path)
    except Exception as exc:  # noqa: BLE001 - any failure to parse is a damaged file
        raise ModelFileError(f"{path}: damaged or tampered skops file ({type(exc).__name__}: {exc})") from None
    refused = sorted(t for t in untrusted if t not in _ALL_ALLOWED)
    if refused:
        raise ModelFileError(f"{path}: refused - the file contains untrusted type(s) {', '.join(refused)}; "
                             "only the types of the models `engage train` writes are loaded")
    return sorted(untrusted)


def load_model(path: str | os.PathLike, expected_features: Sequence[str] | None = None) -> LoadedModel:
    """Load an engage model file after checking it (see the module docstring).

    Parameters
    ----------
    path : str or os.PathLike
        The ``.skops`` file.
    expected_features : sequence of str, optional
        The feature names, in order, that the caller will feed; a file whose features differ is refused.

    Returns
    -------
    LoadedModel
        The estimator with the file's features, target, versions and info.

    Raises
    ------
    ModelFileError
        For a missing, damaged, hostile or foreign file, or one whose features differ.

    Example
    -------
    >>> from engage.models.persistence import load_model
    >>> load_model("no-such-file.skops")  # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    engage.models.persistence.ModelFileError: no-such-file.skops: model file not found
    """
    import skops.io as sio

    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: model file not found")
    if not zipfile.is_zipfile(path):
        raise ModelFileError(f"{path}: not a skops model file (not a zip archive)")
    trusted = _open_checked(path)
    try:
        doc = sio.load(path, trusted=trusted)
    except Exception as exc:  # noqa: BLE001
        raise ModelFileError(f"{path}: damaged or tampered skops file ({type(exc).__name__}: {exc})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ModelFileError(f"{path}: a skops file, but not an engage model (no '{FORMAT}' header)")
    if int(doc.get("format_version", 0)) > FORMAT_VERSION:
        raise ModelFileError(f"{path}: model format {doc.get('format_version')} is newer than this engage "
                             f"understands ({FORMAT_VERSION}); upgrade engage")
    model = doc.get("model")
    if model is None or not hasattr(model, "predict_proba"):
        raise ModelFileError(f"{path}: the engage model has no estimator with predict_proba")
    features = tuple(str(f) for f in doc.get("features", ()))
    if expected_features is not None and tuple(expected_features) != features:
        missing = [f for f in features if f not in expected_features]
        extra = [f for f in expected_features if f not in features]
        raise ModelFileError(f"{path}: feature names differ from the pipeline's: model needs {missing or 'the same'}"
                             f"{' it does not get' if missing else ''}; pipeline has {extra or 'the same, in another order'}"
                             f"{' the model does not know' if extra else ''}")
    versions = {str(k): str(v) for k, v in dict(doc.get("versions", {})).items()}
    here = _versions()
    if versions.get("sklearn", "").split(".")[:2] != here["sklearn"].split(".")[:2]:
        log.warning("%s: written with scikit-learn %s, loaded with %s; retrain if results look wrong", path,
                    versions.get("sklearn", "?"), here["sklearn"])
    return LoadedModel(model, features, str(doc.get("target", "")), versions, dict(doc.get("info", {})), path)
