"""Saving and loading trained models with skops - never pickle.

A model file is a skops archive of one dict: ``format`` (``"engage-model"``), ``format_version``,
``features`` (the input channel names, in order), ``target``, the versions of engage,
scikit-learn and skops that wrote it, free ``info`` (training data, metrics) and ``model`` (a
scikit-learn estimator). :func:`load_model` refuses, with a :class:`ModelFileError` naming the
file and the problem:

* a file that is not a skops archive, or is damaged (a tampered archive);
* any type outside scikit-learn, NumPy/SciPy basics and engage's own model classes
  (skops lists the untrusted types; nothing is executed before the check);
* a skops file that is not an engage model, or a newer format;
* features that differ from the ones the caller will feed (``expected_features``).

A different scikit-learn minor version is logged as a warning (the file usually still works;
retrain to be sure).

>>> import tempfile, pathlib
>>> from sklearn.linear_model import LogisticRegression
>>> p = pathlib.Path(tempfile.mkdtemp()) / "m.skops"
>>> m = LogisticRegression().fit([[0.0], [1.0]], [0, 1])
>>> save_model(m, p, features=("z_hr_mean",), target="stress")
>>> load_model(p, expected_features=("z_hr_mean",)).features
('z_hr_mean',)
"""

from __future__ import annotations

import logging
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from engage.core import EngageError

log = logging.getLogger(__name__)

FORMAT = "engage-model"
FORMAT_VERSION = 1
#: type-name prefixes accepted on load, besides skops' own defaults
TRUSTED_PREFIXES = ("sklearn.", "numpy.", "scipy.sparse.", "engage.models.")
#: built-in types skops may list that are harmless containers or scalars
TRUSTED_BUILTINS = {"builtins.dict", "builtins.list", "builtins.tuple", "builtins.str", "builtins.int",
                    "builtins.float", "builtins.bool", "builtins.NoneType", "builtins.slice", "builtins.type",
                    "builtins.object"}


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


def _trusted(name: str) -> bool:
    return name in TRUSTED_BUILTINS or name.startswith(TRUSTED_PREFIXES)


def load_model(path: str | os.PathLike, expected_features: Sequence[str] | None = None) -> LoadedModel:
    """Load an engage model file after checking it (see the module docstring)."""
    import skops.io as sio

    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: model file not found")
    if not zipfile.is_zipfile(path):
        raise ModelFileError(f"{path}: not a skops model file (not a zip archive)")
    try:
        untrusted = sio.get_untrusted_types(file=path)
    except Exception as exc:  # noqa: BLE001 - any failure to parse is a damaged file
        raise ModelFileError(f"{path}: damaged or tampered skops file ({type(exc).__name__}: {exc})") from None
    refused = sorted(t for t in untrusted if not _trusted(t))
    if refused:
        raise ModelFileError(f"{path}: refused - the file contains untrusted type(s) {', '.join(refused)}; "
                             "only scikit-learn, NumPy/SciPy and engage model types are loaded")
    try:
        doc = sio.load(path, trusted=untrusted)
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
