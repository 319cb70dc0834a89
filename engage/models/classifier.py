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
from sklearn.utils.validation import check_is_fitted, validate_data

from engage.core import Chunk, Processor, StreamInfo

from .rules import ENGAGEMENT_CHANNELS, engagement_info


class Clip(TransformerMixin, BaseEstimator):
    """Clips features to ``[-limit, limit]`` (baseline z-scores can explode when a baseline is
    flat), and guards the feature names: fitted on a ``pandas.DataFrame``, it refuses columns
    with other names or in another order, and a plain array, whose order it cannot check.

    It is the first step of every pipeline :func:`make_classifier` builds, so a trained engage
    model refuses features fed in the wrong order instead of silently turning decisions over.

    Parameters
    ----------
    limit
        The largest absolute value kept.

    Attributes
    ----------
    n_features_in_ : int
        Number of features seen in ``fit``.
    feature_names_in_ : ndarray of str
        Their names, when ``fit`` was given a DataFrame (kept in the model file as plain strings).

    Examples
    --------
    >>> import pandas as pd
    >>> X = pd.DataFrame({"z_hr_mean": [0.5, 40.0], "z_eda_tonic": [-30.0, 1.0]})
    >>> clip = Clip(limit=20).fit(X)
    >>> clip.transform(X).tolist()
    [[0.5, -20.0], [20.0, 1.0]]
    >>> clip.transform(X[["z_eda_tonic", "z_hr_mean"]])
    Traceback (most recent call last):
    ...
    ValueError: The feature names should match those that were passed during fit.
    Feature names must be in the same order as they were in fit.
    <BLANKLINE>
    """

    def __init__(self, limit: float = 20.0) -> None:
        self.limit = limit

    # the names are kept as a tuple of str: a model file then holds no object arrays
    @property
    def feature_names_in_(self) -> np.ndarray:
        names = self.__dict__.get("_feature_names")
        if names is None:
            raise AttributeError("feature_names_in_")
        return np.asarray(names, dtype=object)

    @feature_names_in_.setter
    def feature_names_in_(self, names) -> None:
        self._feature_names = tuple(str(n) for n in names)

    @feature_names_in_.deleter
    def feature_names_in_(self) -> None:
        self.__dict__.pop("_feature_names", None)

    def fit(self, X, y=None):  # noqa: D401 - scikit-learn API
        """Record the number and names of the features.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_samples, n_features)
        y : ignored

        Returns
        -------
        Clip
            This transformer.
        """
        if not self.limit > 0:
            raise ValueError(f"limit must be positive, got {self.limit!r}")
        validate_data(self, X, reset=True, ensure_all_finite="allow-nan", dtype=np.float64)
        return self

    def transform(self, X):
        """``X`` clipped, after checking its feature names against those seen in ``fit``.

        Parameters
        ----------
        X : DataFrame (or array-like when fitted on one) of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples, n_features)
            The clipped values (NaN stays NaN).
        """
        check_is_fitted(self)
        if "_feature_names" in self.__dict__ and not hasattr(X, "columns"):
            names = ", ".join(self._feature_names[:4]) + (", ..." if len(self._feature_names) > 4 else "")
            raise ValueError(f"this model was trained on named features ({names}): pass a pandas DataFrame with "
                             f"those {len(self._feature_names)} columns in that order, not an array whose column "
                             "order cannot be checked")
        X = validate_data(self, X, reset=False, ensure_all_finite="allow-nan", dtype=np.float64)
        return np.clip(X, -self.limit, self.limit)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        return tags


KINDS = ("logistic", "boosting", "ensemble")

__all__ = ["Clip", "ClassifierModel", "EngagementFusion", "KINDS", "make_classifier", "shift_to_threshold"]


def make_classifier(kind: str = "logistic", calibrate: bool = True, random_state: int = 0) -> object:
    """A fresh, unfitted classifier.

    ``logistic`` and ``boosting`` are pipelines (clip and check names → impute → scale →
    estimator), calibrated unless ``calibrate`` is False. ``ensemble`` is the soft vote (mean
    probability) of the two: the linear model generalises across viewers, the trees add
    interactions (a fast heart with no motion, say) and threshold effects; their errors are only
    partly shared.

    Parameters
    ----------
    kind
        ``logistic``, ``boosting`` or ``ensemble``.
    calibrate
        Wrap it in sigmoid probability calibration (3-fold), so ``predict_proba`` is a usable
        probability for the event state machine's confidence gate.
    random_state
        Seed of the trees.

    Returns
    -------
    estimator
        A scikit-learn classifier (``fit``, ``predict_proba``).

    Examples
    --------
    >>> make_classifier("logistic", calibrate=False).steps[0][0]
    'clip'
    """
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


def shift_to_threshold(p: np.ndarray, threshold: float) -> np.ndarray:
    """Probabilities moved on the logit scale so that ``threshold`` lands on 0.5.

    A model chosen for fewer false alarms decides "aroused" above its own threshold (say 0.58);
    everything downstream (the state machine, the fusion, the dashboard) reads 0.5 as the line.
    The shift keeps the order of the scores and moves the line, nothing else.

    Parameters
    ----------
    p
        Probabilities.
    threshold
        The model's decision threshold, in (0, 1).

    Returns
    -------
    ndarray
        The shifted scores (``p`` itself when ``threshold`` is 0.5).

    Examples
    --------
    >>> shift_to_threshold(np.array([0.58, 0.9]), 0.58).round(3).tolist()
    [0.5, 0.867]
    """
    p = np.asarray(p, dtype=float)
    if threshold == 0.5:
        return p
    q = np.clip(p, 1e-9, 1 - 1e-9)
    logit = np.log(q / (1 - q)) - np.log(threshold / (1 - threshold))
    return 1.0 / (1.0 + np.exp(-logit))


class ClassifierModel(Processor):
    """A trained model on a feature stream → ``Engagement`` rows (see the module docstring).

    Rows whose feature stream lacks a model feature get NaN there (imputed). The model gets a
    DataFrame with its features by name, in its order. Its probability, shifted so that the
    model's decision threshold (``info["threshold"]``) sits at 0.5 (:func:`shift_to_threshold`),
    goes into ``channel``; the other scores stay NaN.

    Parameters
    ----------
    model
        A :class:`~engage.models.persistence.LoadedModel` (or anything with ``model``,
        ``features`` and optionally ``info`` and ``target``).
    input_type
        The feature stream it reads.
    output_type
        The stream type of its rows.
    required
        Quality channels that must be at least 0.2 for its rows to count (``quality`` 0 otherwise).
    channel
        ``arousal`` or ``boredom`` (default: ``boredom`` for a model whose target names boredom or
        boring, else ``arousal``).

    Examples
    --------
    >>> from engage.models.evaluation import load_shipped
    >>> ClassifierModel(load_shipped()).channel
    'arousal'
    """

    name = "classifier-model"

    def __init__(self, model, input_type: str = "WristFeaturesRelative", output_type: str = "Engagement",
                 required: tuple[str, ...] = ("hr_quality", "eda_quality"), channel: str | None = None) -> None:
        self.model = model
        target = str(getattr(model, "target", "") or "")
        self.channel = channel or ("boredom" if "bored" in target or "boring" in target else "arousal")
        if self.channel not in ("arousal", "boredom"):
            raise ValueError(f"channel must be 'arousal' or 'boredom', not {self.channel!r}")
        #: the model's decision threshold (chosen when it was trained; 0.5 when the file has none)
        self.threshold = float(dict(getattr(model, "info", None) or {}).get("threshold", 0.5))
        self.input_type = input_type
        self.output_type = output_type
        self.required = required

    def accepts(self, info: StreamInfo) -> bool:
        return info.type == self.input_type

    def process(self, chunk: Chunk) -> list[Chunk]:
        import pandas as pd

        names = chunk.info.channels
        X = pd.DataFrame({f: chunk.data[:, names.index(f)].astype(float) if f in names else np.full(len(chunk), np.nan)
                          for f in self.model.features}, columns=list(self.model.features))
        p = shift_to_threshold(self.model.model.predict_proba(X)[:, 1], self.threshold)
        qcols = [i for i, n in enumerate(names) if n.endswith("_quality")]
        quality = chunk.data[:, qcols].astype(float).mean(axis=1) if qcols else np.ones(len(chunk))
        need = [names.index(n) for n in self.required if n in names]
        if need:  # a model without its key modalities (pulse, EDA) is guessing from imputed medians
            quality = np.where(chunk.data[:, need].astype(float).min(axis=1) >= 0.2, quality, 0.0)
        confidence = np.abs(p - 0.5) * 2.0 * quality
        out = np.full((len(p), len(ENGAGEMENT_CHANNELS)), np.nan)
        out[:, ENGAGEMENT_CHANNELS.index(self.channel)] = p
        out[:, ENGAGEMENT_CHANNELS.index("confidence")] = confidence
        out[:, ENGAGEMENT_CHANNELS.index("quality")] = quality
        return [Chunk(engagement_info(chunk.info.viewer, self.output_type), out, chunk.timestamps)]


class EngagementFusion(Processor):
    """The rule model's scores with those of a trained model where that model can be trusted.

    Accepts the rule model's rows (type ``rules_type``) and a trained model's rows (type
    ``model_type``, e.g. :class:`ClassifierModel` with ``output_type="ArousalModel"``) and emits
    ``Engagement``: each rule row, with the score the model gives (``arousal`` for a wrist arousal
    model, ``boredom`` for a boredom model) and ``confidence`` replaced by the latest model row when
    that row is at most ``max_age_s`` old and its ``quality`` (the mean quality of the modalities it
    was trained on) is at least ``min_quality``; otherwise the rule row unchanged - the fallback
    when the model's modalities are missing or lost. ``attention`` always comes from the face.
    Counters ``fusion.model_rows`` and ``fusion.rule_rows`` say which source each output row took.

    Parameters
    ----------
    rules_type
        The rule model's stream type.
    model_type
        The trained model's stream type.
    max_age_s
        How old the latest model row may be.
    min_quality
        The least model quality that replaces the rules' arousal.

    Examples
    --------
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
        self._model: dict[str, tuple[float, np.ndarray]] = {}  # viewer → (t, the model's latest row)

    def accepts(self, info: StreamInfo) -> bool:
        return info.type in (self.rules_type, self.model_type)

    def process(self, chunk: Chunk) -> list[Chunk]:
        viewer = chunk.info.viewer
        c, q = ENGAGEMENT_CHANNELS.index("confidence"), ENGAGEMENT_CHANNELS.index("quality")
        if chunk.info.type == self.model_type:
            row = chunk.data[-1].astype(float)
            self._model[viewer] = (float(chunk.timestamps[-1]), row)
            return []
        out = chunk.data.astype(float).copy()
        latest = self._model.get(viewer)
        # the scores the model gives (arousal for a wrist arousal model, boredom for a boredom model)
        scored = [] if latest is None else [k for k in (ENGAGEMENT_CHANNELS.index("arousal"),
                                                        ENGAGEMENT_CHANNELS.index("boredom"))
                                            if np.isfinite(latest[1][k])]
        for i, t in enumerate(chunk.timestamps):
            use = (bool(scored) and 0.0 <= float(t) - latest[0] <= self.max_age_s
                   and latest[1][q] >= self.min_quality)
            if use:
                out[i, scored] = latest[1][scored]
                out[i, c] = latest[1][c]
            self.ctx.counters["fusion.model_rows" if use else "fusion.rule_rows"] += 1
        return [Chunk(engagement_info(viewer), out, chunk.timestamps)]
