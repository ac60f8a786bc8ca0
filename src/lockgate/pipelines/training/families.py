"""Model families: what each one searches over and how it trains.

A family declares its parameters (kind, the value used when a trial does not set it, and the
default search range, written exactly as a range in ``lockgate.toml``), the tasks it serves,
and whether it trains in steps. Iterative families report the validation metric after every
step through ``report(step, value)``; when that returns True they raise :class:`TrialPruned`,
so a study stops hopeless trials early. Steps are numbered from 1.

| family | tasks | steps |
|---|---|---|
| ``logistic`` | classification | one fit (scaled features, L2 logistic regression) |
| ``linear`` | regression | one fit (scaled features, Ridge) |
| ``hist_gradient_boosting`` | both | 5 warm-started rounds of ``max_iter / 5`` iterations |
| ``random_forest`` | both | 5 warm-started rounds of ``n_estimators / 5`` trees |
| ``mlp`` | both | epochs, early stopping; needs PyTorch (``lockgate[torch]``) |

Every model is seeded, so the same parameters, seed and data give the same model. Fitted
models are picklable and expose ``predict`` (class index or value) and, for classification,
``predict_proba``.
"""

from __future__ import annotations

import importlib.util
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from lockgate.errors import ConfigError
from lockgate.pipelines.training.metrics import score

Report = Callable[[int, float], bool]
"""``report(step, validation_metric) -> stop``: True means the trial is pruned."""
ParamValue = str | int | float
ParamKind = Literal["float", "int", "choice"]
ITERATIVE_STEPS = 5
"""Rounds an iterative tree family trains in (and so reports)."""
TORCH_HINT = "pip install 'lockgate[torch]'"


class TrialPruned(Exception):
    """A trial stopped early because ``report`` said it cannot beat the best trials.

    Attributes:
        step: the last step trained and reported.
        history: the validation metric of every step trained before stopping.
    """

    def __init__(self, step: int, history: list[dict[str, float]] | None = None) -> None:
        super().__init__(f"pruned at step {step}")
        self.step = step
        self.history = list(history or [])

    def __reduce__(self) -> tuple[type[TrialPruned], tuple[int, list[dict[str, float]]]]:
        # Rebuilt from its fields, so it crosses process boundaries (worker pools) intact.
        return (TrialPruned, (self.step, self.history))


@dataclass(frozen=True)
class ParamSpec:
    """One parameter of a family.

    Attributes:
        kind: ``float``, ``int`` or ``choice`` (a string from ``search_range``).
        default: the value used when a trial does not set the parameter.
        search_range: the default search range, as in lockgate.toml: ``[low, high]``,
            ``[low, high, "log"]``, or the list of allowed choices.
        at_least: numeric values must be at least this.
        above: numeric values must be greater than this.
        below: numeric values must be less than this.
    """

    kind: ParamKind
    default: ParamValue
    search_range: tuple[float | int | str, ...]
    at_least: float | None = None
    above: float | None = None
    below: float | None = None

    def admits(self, value: float) -> bool:
        """Whether the estimator accepts the numeric ``value``."""
        return not (
            (self.at_least is not None and value < self.at_least)
            or (self.above is not None and value <= self.above)
            or (self.below is not None and value >= self.below)
        )

    def limits(self) -> str:
        """The valid values in words, e.g. ``> 0`` or ``>= 0 and < 1``."""
        parts = []
        if self.at_least is not None:
            parts.append(f">= {self.at_least:g}")
        if self.above is not None:
            parts.append(f"> {self.above:g}")
        if self.below is not None:
            parts.append(f"< {self.below:g}")
        return " and ".join(parts) or "any number"


@dataclass
class FitResult:
    """A fitted model, its validation metric per step, and the training time in seconds."""

    model: Any
    history: list[dict[str, float]]
    seconds: float


@dataclass
class FitContext:
    """What a trainer gets besides its parameters; it records the per-step history."""

    task: str
    seed: int
    X_train: np.ndarray
    y_train: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray
    metric: str
    classes: Sequence[str] | None
    report: Report
    started: float = field(default_factory=time.perf_counter)
    history: list[dict[str, float]] = field(default_factory=list)

    def record(self, step: int, model: Any, **extra: float) -> float:
        """Score ``model`` on validation, append it to the history, return the score."""
        value = evaluate(model, self.X_val, self.y_val, self.metric, self.task, self.classes)
        seconds = time.perf_counter() - self.started
        self.history.append({"step": step, self.metric: value, **extra, "seconds": seconds})
        return value

    def checkpoint(self, step: int, value: float) -> None:
        """Report a step's score; raise :class:`TrialPruned` if the study says stop."""
        if self.report(step, value):
            raise TrialPruned(step, self.history)


Trainer = Callable[[dict[str, ParamValue], FitContext], Any]


@dataclass(frozen=True)
class Family:
    """A model family a study can pick.

    Attributes:
        name: the name used in lockgate.toml and as the ``family`` trial parameter.
        tasks: the tasks it serves.
        params: its parameters by name.
        iterative: True if it trains in steps and reports each (so it can be pruned).
        needs_torch: True if it needs the optional PyTorch extra.
    """

    name: str
    tasks: frozenset[str]
    params: Mapping[str, ParamSpec]
    iterative: bool
    trainer: Trainer
    needs_torch: bool = False

    @property
    def defaults(self) -> dict[str, list[float | int | str]]:
        """The default search range of every parameter, in lockgate.toml form."""
        return {name: list(spec.search_range) for name, spec in self.params.items()}

    def fit(
        self,
        params: Mapping[str, ParamValue],
        task: str,
        seed: int,
        X_train: np.ndarray,
        y_train: np.ndarray,
        X_val: np.ndarray,
        y_val: np.ndarray,
        metric: str,
        classes: Sequence[str] | None = None,
        report: Report | None = None,
    ) -> FitResult:
        """Train on the training split, scoring each step on validation.

        Args:
            params: parameter values by unprefixed name; missing ones take their default.
            task: ``classification`` (``y`` holds class indices) or ``regression``.
            seed: seeds every source of randomness in training.
            X_train: training features, ``(rows, features)``.
            y_train: training targets.
            X_val: validation features.
            y_val: validation targets.
            metric: the metric recorded in the history and passed to ``report``.
            classes: class labels in index order (classification).
            report: called after each step of an iterative family; True stops the trial.

        Raises:
            TrialPruned: ``report`` returned True.
            ConfigError: the family does not serve ``task`` or a parameter is unknown.
        """
        if task not in self.tasks:
            raise ConfigError(
                f"family '{self.name}' is for {' and '.join(sorted(self.tasks))} only, not {task}"
            )
        unknown = sorted(set(params) - set(self.params))
        if unknown:
            raise ConfigError(
                f"family '{self.name}' has no parameter '{unknown[0]}'; "
                f"its parameters are: {', '.join(self.params)}"
            )
        resolved = {name: params.get(name, spec.default) for name, spec in self.params.items()}
        job = FitContext(
            task, seed, X_train, y_train, X_val, y_val, metric, classes, report or _never_stop
        )
        model = self.trainer(resolved, job)
        return FitResult(model, job.history, time.perf_counter() - job.started)


def _never_stop(step: int, value: float) -> bool:
    return False


def torch_available() -> bool:
    """Whether PyTorch can be imported (without importing it: that takes seconds)."""
    return importlib.util.find_spec("torch") is not None


def n_classes_of(classes: Sequence[str] | None) -> int:
    """How many classes ``classes`` lists; classification needs at least two."""
    if not classes or len(classes) < 2:
        raise ValueError("classification needs the list of (at least two) classes")
    return len(classes)


def predict_output(model: Any, X: np.ndarray, task: str, n_classes: int = 0) -> np.ndarray:
    """What metrics score: predicted values, or ``(rows, n_classes)`` class probabilities.

    A class missing from the training split has no column in sklearn's ``predict_proba``;
    it is given probability 0 here so columns always follow the class index.
    """
    if task == "regression":
        return np.asarray(model.predict(X), dtype=np.float64)
    proba = np.asarray(model.predict_proba(X), dtype=np.float64)
    seen = np.asarray(model.classes_, dtype=np.int64)
    if proba.shape[1] == n_classes and np.array_equal(seen, np.arange(n_classes)):
        return proba
    full = np.zeros((len(proba), n_classes))
    full[:, seen] = proba
    return full


def evaluate(
    model: Any,
    X: np.ndarray,
    y: np.ndarray,
    metric: str,
    task: str,
    classes: Sequence[str] | None = None,
) -> float:
    """``metric`` of ``model`` on ``(X, y)``."""
    n_classes = n_classes_of(classes) if task == "classification" else 0
    return score(metric, y, predict_output(model, X, task, n_classes), classes)


def _increments(total: int, steps: int = ITERATIVE_STEPS) -> list[int]:
    """Cumulative sizes that grow to ``total`` in at most ``steps`` rounds."""
    steps = max(1, min(steps, total))
    return sorted({max(1, round(total * k / steps)) for k in range(1, steps + 1)})


def _fit_logistic(params: dict[str, ParamValue], job: FitContext) -> Any:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    weight = None if params["class_weight"] == "none" else str(params["class_weight"])
    model = make_pipeline(
        StandardScaler(),
        LogisticRegression(
            C=float(params["C"]), class_weight=weight, max_iter=1000, random_state=job.seed
        ),
    )
    with warnings.catch_warnings():
        # An unconverged fit is still a valid trial: its validation score says how good it is.
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(job.X_train, job.y_train)
    job.record(1, model)
    return model


def _fit_linear(params: dict[str, ParamValue], job: FitContext) -> Any:
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), Ridge(alpha=float(params["alpha"])))
    model.fit(job.X_train, job.y_train)
    job.record(1, model)
    return model


def _fit_hist_gradient_boosting(params: dict[str, ParamValue], job: FitContext) -> Any:
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    estimator = (
        HistGradientBoostingClassifier
        if job.task == "classification"
        else HistGradientBoostingRegressor
    )
    model = estimator(
        learning_rate=float(params["learning_rate"]),
        max_leaf_nodes=int(params["max_leaf_nodes"]),
        min_samples_leaf=int(params["min_samples_leaf"]),
        l2_regularization=float(params["l2_regularization"]),
        # lockgate's own validation split decides; sklearn's internal one would vary the
        # number of iterations and hide the per-step curve the pruner needs.
        early_stopping=False,
        warm_start=True,
        random_state=job.seed,
    )
    for step, iterations in enumerate(_increments(int(params["max_iter"])), start=1):
        model.set_params(max_iter=iterations)
        model.fit(job.X_train, job.y_train)
        value = job.record(step, model, max_iter=iterations)
        job.checkpoint(step, value)
    return model.set_params(warm_start=False)


_MAX_FEATURES: dict[str, str | float] = {"sqrt": "sqrt", "log2": "log2", "all": 1.0}


def _fit_random_forest(params: dict[str, ParamValue], job: FitContext) -> Any:
    from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor

    estimator = RandomForestClassifier if job.task == "classification" else RandomForestRegressor
    model = estimator(
        max_depth=int(params["max_depth"]),
        min_samples_leaf=int(params["min_samples_leaf"]),
        max_features=_MAX_FEATURES[str(params["max_features"])],
        warm_start=True,
        random_state=job.seed,
        # Parallelism comes from study workers; one core per trial avoids oversubscription.
        n_jobs=1,
    )
    for step, trees in enumerate(_increments(int(params["n_estimators"])), start=1):
        model.set_params(n_estimators=trees)
        model.fit(job.X_train, job.y_train)
        value = job.record(step, model, n_estimators=trees)
        job.checkpoint(step, value)
    return model.set_params(warm_start=False)


def _fit_mlp(params: dict[str, ParamValue], job: FitContext) -> Any:
    from lockgate.pipelines.training.mlp import fit_mlp

    return fit_mlp(params, job)


_CLASSIFICATION = frozenset({"classification"})
_REGRESSION = frozenset({"regression"})
_BOTH = frozenset({"classification", "regression"})

FAMILIES: dict[str, Family] = {
    family.name: family
    for family in (
        Family(
            "logistic",
            _CLASSIFICATION,
            {
                "C": ParamSpec("float", 1.0, (1e-3, 100.0, "log"), above=0),
                "class_weight": ParamSpec("choice", "none", ("none", "balanced")),
            },
            iterative=False,
            trainer=_fit_logistic,
        ),
        Family(
            "linear",
            _REGRESSION,
            {"alpha": ParamSpec("float", 1.0, (1e-4, 100.0, "log"), at_least=0)},
            iterative=False,
            trainer=_fit_linear,
        ),
        Family(
            "hist_gradient_boosting",
            _BOTH,
            {
                "learning_rate": ParamSpec("float", 0.1, (0.01, 0.3, "log"), above=0),
                "max_iter": ParamSpec("int", 100, (50, 300), at_least=1),
                "max_leaf_nodes": ParamSpec("int", 31, (8, 64, "log"), at_least=2),
                "min_samples_leaf": ParamSpec("int", 20, (5, 50), at_least=1),
                "l2_regularization": ParamSpec("float", 0.0, (1e-6, 10.0, "log"), at_least=0),
            },
            iterative=True,
            trainer=_fit_hist_gradient_boosting,
        ),
        Family(
            "random_forest",
            _BOTH,
            {
                "n_estimators": ParamSpec("int", 100, (50, 300), at_least=1),
                "max_depth": ParamSpec("int", 16, (3, 30), at_least=1),
                "min_samples_leaf": ParamSpec("int", 1, (1, 20), at_least=1),
                "max_features": ParamSpec("choice", "sqrt", ("sqrt", "log2", "all")),
            },
            iterative=True,
            trainer=_fit_random_forest,
        ),
        Family(
            "mlp",
            _BOTH,
            {
                "hidden_units": ParamSpec("int", 64, (16, 256, "log"), at_least=1),
                "layers": ParamSpec("int", 2, (1, 3), at_least=1),
                "learning_rate": ParamSpec("float", 1e-3, (1e-4, 1e-2, "log"), above=0),
                "weight_decay": ParamSpec("float", 1e-4, (1e-6, 1e-2, "log"), at_least=0),
                "dropout": ParamSpec("float", 0.1, (0.0, 0.5), at_least=0, below=1),
                "batch_size": ParamSpec("int", 128, (32, 512, "log"), at_least=1),
                "epochs": ParamSpec("int", 50, (10, 100), at_least=1),
            },
            iterative=True,
            trainer=_fit_mlp,
            needs_torch=True,
        ),
    )
}

DEFAULT_FAMILIES: dict[str, tuple[str, ...]] = {
    "classification": ("logistic", "hist_gradient_boosting", "random_forest"),
    "regression": ("linear", "hist_gradient_boosting", "random_forest"),
}
"""Searched when lockgate.toml lists no family: fast, dependable, no extra install."""


def families_for(task: str) -> list[str]:
    """Names of every family that serves ``task``."""
    return [name for name, family in FAMILIES.items() if task in family.tasks]
