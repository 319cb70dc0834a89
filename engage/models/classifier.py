"""Trainable engagement classifiers: scikit-learn pipelines, and the processor that runs one live.

:func:`make_classifier` builds a composable scikit-learn pipeline (clip extreme z-scores →
impute missing features → standardise → estimator), wrapped in probability calibration
(``CalibratedClassifierCV``, sigmoid) so ``predict_proba`` is a usable probability for the
event state machine's confidence gate. It has the usual ``fit``/``predict_proba``.

:class:`ClassifierModel` applies a trained model (see :mod:`engage.models.persistence`) to the
rows of a feature stream (by default ``WristFeaturesRelative``) and emits ``Engagement`` rows:
``arousal`` = P(stress/arousal); ``quality`` = the mean quality of the modalities, 0 when a
``required`` one (pulse, EDA) is missing or poor; ``confidence`` = how far from 0.5 the probability
is, times that quality; ``boredom`` and ``attention`` are not estimated by a wrist model and stay
NaN (the rule model or the face provide them; see :class:`EngagementFusion`).

>>> clf = make_classifier("logistic")
>>> clf.fit([[0.0, 1.0], [1.0, 0.0], [0.1, 0.9], [0.9, 0.2]] * 5, [0, 1, 0, 1] * 5).predict_proba([[1.0, 0.0]]).shape
(1, 2)
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import HistGradientBoostingClassifier, VotingClassifier
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


KINDS = ("logistic", "boosting", "ensemble")


def make_classifier(kind: str = "logistic", calibrate: bool = True, random_state: int = 0) -> object:
    """A fresh, unfitted classifier (``kind``: ``logistic``, ``boosting`` or ``ensemble``).

    ``logistic`` and ``boosting`` are pipelines (clip → impute → scale → estimator), calibrated
    unless ``calibrate`` is False. ``ensemble`` is the soft vote (mean probability) of the two:
    the linear model generalises across viewers, the trees add interactions (a fast heart with
    no motion, say) and threshold effects; their errors are only partly shared."""
    if kind == "ensemble":
        members = [(k, make_classifier(k, calibrate, random_state)) for k in ("logistic", "boosting")]
        return VotingClassifier(members, voting="soft")
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

    def __init__(self, model, input_type: str = "WristFeaturesRelative", output_type: str = "Engagement",
                 required: tuple[str, ...] = ("hr_quality", "eda_quality")) -> None:
        self.model = model
        self.input_type = input_type
        self.output_type = output_type
        self.required = required

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
        need = [names.index(n) for n in self.required if n in names]
        if need:  # a model without its key modalities (pulse, EDA) is guessing from imputed medians
            quality = np.where(chunk.data[:, need].astype(float).min(axis=1) >= 0.2, quality, 0.0)
        confidence = np.abs(p - 0.5) * 2.0 * quality
        out = np.column_stack([p, np.full(len(p), np.nan), np.full(len(p), np.nan), confidence, quality])
        assert out.shape[1] == len(ENGAGEMENT_CHANNELS)
        return [Chunk(engagement_info(chunk.info.viewer, self.output_type), out, chunk.timestamps)]


class EngagementFusion(Processor):
    """The rule model's scores with arousal from a trained model where that model can be trusted.

    Accepts the rule model's rows (type ``rules_type``) and a trained model's rows (type
    ``model_type``, e.g. :class:`ClassifierModel` with ``output_type="ArousalModel"``) and emits
    ``Engagement``: each rule row, with ``arousal`` and ``confidence`` replaced by the latest model
    row when that row is at most ``max_age_s`` old and its ``quality`` (the mean quality of the
    modalities it was trained on) is at least ``min_quality``; otherwise the rule row unchanged -
    the fallback when wrist modalities are missing or lost. ``boredom`` and ``attention`` always
    come from the rules (and the face). Counters ``fusion.model_rows`` and ``fusion.rule_rows``
    say which source each output row took its arousal from.

    >>> EngagementFusion().accepts(engagement_info("v", "ArousalModel"))
    True
    """

    name = "engagement-fusion"

    def __init__(self, rules_type: str = "EngagementRules", model_type: str = "ArousalModel",
                 max_age_s: float = 15.0, min_quality: float = 0.5) -> None:
        self.rules_type = rules_type
        self.model_type = model_type
        self.max_age_s = max_age_s
        self.min_quality = min_quality
        self._model: dict[str, tuple[float, float, float, float]] = {}  # viewer → (t, arousal, confidence, quality)

    def accepts(self, info: StreamInfo) -> bool:
        return info.type in (self.rules_type, self.model_type)

    def process(self, chunk: Chunk) -> list[Chunk]:
        viewer = chunk.info.viewer
        a, c, q = (ENGAGEMENT_CHANNELS.index(k) for k in ("arousal", "confidence", "quality"))
        if chunk.info.type == self.model_type:
            row = chunk.data[-1].astype(float)
            self._model[viewer] = (float(chunk.timestamps[-1]), row[a], row[c], row[q])
            return []
        out = chunk.data.astype(float).copy()
        latest = self._model.get(viewer)
        for i, t in enumerate(chunk.timestamps):
            use = (latest is not None and 0.0 <= float(t) - latest[0] <= self.max_age_s and np.isfinite(latest[1])
                   and latest[3] >= self.min_quality)
            if use:
                out[i, a], out[i, c] = latest[1], latest[2]
            self.ctx.counters["fusion.model_rows" if use else "fusion.rule_rows"] += 1
        return [Chunk(engagement_info(viewer), out, chunk.timestamps)]
