"""Trainable engagement classifiers: scikit-learn pipelines, and the processor that runs one live.

:func:`make_classifier` builds a composable scikit-learn pipeline (clip extreme z-scores →
impute missing features → standardise → estimator), wrapped in probability calibration
(``CalibratedClassifierCV``, sigmoid) so ``predict_proba`` is a usable probability for the
event state machine's confidence gate. It has the usual ``fit``/``predict_proba``.

:class:`ClassifierModel` applies a trained model (see :mod:`engage.models.persistence`) to the
rows of a feature stream (by default ``WristFeaturesRelative``) and emits ``Engagement`` rows:
``arousal`` = P(stress/arousal); ``confidence`` = how far from 0.5 the probability is, times the
mean quality of the modalities present; ``boredom`` and ``attention`` are not estimated by a wrist
model and stay NaN (the rule model or the face provide them).

>>> clf = make_classifier("logistic")
>>> clf.fit([[0.0, 1.0], [1.0, 0.0], [0.1, 0.9], [0.9, 0.2]] * 5, [0, 1, 0, 1] * 5).predict_proba([[1.0, 0.0]]).shape
(1, 2)
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from engage.core import Chunk, Processor, StreamInfo

from .rules import ENGAGEMENT_CHANNELS, engagement_info


class Clip(TransformerMixin, BaseEstimator):
    """Clips features to ``[-limit, limit]`` (baseline z-scores can explode when a baseline is flat)."""

    def __init__(self, limit: float = 20.0) -> None:
        self.limit = limit

    def fit(self, X, y=None):  # noqa: D401 - scikit-learn API
        self.n_features_in_ = np.asarray(X).shape[1]
        return self

    def transform(self, X):
        return np.clip(np.asarray(X, dtype=float), -self.limit, self.limit)


KINDS = ("logistic", "boosting")


def make_classifier(kind: str = "logistic", calibrate: bool = True, random_state: int = 0) -> object:
    """A fresh, unfitted classifier pipeline (``kind``: ``logistic`` or ``boosting``)."""
    if kind == "logistic":
        est = LogisticRegression(C=0.1, class_weight="balanced", max_iter=500)
    elif kind == "boosting":
        est = HistGradientBoostingClassifier(max_iter=80, learning_rate=0.1, max_depth=3, class_weight="balanced",
                                             random_state=random_state)
    else:
        raise ValueError(f"unknown classifier kind {kind!r} (choose from {', '.join(KINDS)})")
    pipe = Pipeline([("clip", Clip()), ("impute", SimpleImputer(strategy="median", keep_empty_features=True)),
                     ("scale", StandardScaler()), ("clf", est)])
    return CalibratedClassifierCV(pipe, method="sigmoid", cv=3) if calibrate else pipe


class ClassifierModel(Processor):
    """A trained model on a feature stream → ``Engagement`` rows (see the module docstring).

    ``model`` is a :class:`~engage.models.persistence.LoadedModel` (or anything with ``model``
    and ``features``). Rows whose feature stream lacks a model feature get NaN there (imputed).
    """

    name = "classifier-model"

    def __init__(self, model, input_type: str = "WristFeaturesRelative") -> None:
        self.model = model
        self.input_type = input_type

    def accepts(self, info: StreamInfo) -> bool:
        return info.type == self.input_type

    def process(self, chunk: Chunk) -> list[Chunk]:
        names = chunk.info.channels
        cols = [names.index(f) if f in names else -1 for f in self.model.features]
        X = np.column_stack([chunk.data[:, c].astype(float) if c >= 0 else np.full(len(chunk), np.nan)
                             for c in cols])
        p = self.model.model.predict_proba(X)[:, 1]
        qcols = [i for i, n in enumerate(names) if n.endswith("_quality")]
        quality = chunk.data[:, qcols].astype(float).mean(axis=1) if qcols else np.ones(len(chunk))
        confidence = np.abs(p - 0.5) * 2.0 * quality
        out = np.column_stack([p, np.full(len(p), np.nan), np.full(len(p), np.nan), confidence, quality])
        assert out.shape[1] == len(ENGAGEMENT_CHANNELS)
        return [Chunk(engagement_info(chunk.info.viewer), out, chunk.timestamps)]
