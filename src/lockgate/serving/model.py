"""The package a server answers with: loaded, warmed up, and strict about its input.

A request's rows are checked column by column with the data pipeline's strict coercion
(``tolerance=0.0``): a value that preparation would have counted as unparseable is the
client's error (400), not a silent null. Several requests are answered by one pass through
the transformer and the model (see :mod:`lockgate.serving.batching`), because for one row
the fixed cost of each Arrow and scikit-learn call is almost all of the work.

Features are float32, so a number beyond float32's range (or one whose standardised feature
overflows it) cannot be answered: it is refused as out of range, like a number that does not
parse, where the model would otherwise fail on an infinite feature.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lockgate.pipelines.data.columns import Kind, coerce
from lockgate.pipelines.data.rejection import FileRejected
from lockgate.pipelines.deployment.payload import RequestRejected, Rows
from lockgate.pipelines.training.package import ModelPackage, load_package, package_sha256
from lockgate.ports.endpoint import DeploymentFailed

_UNPARSEABLE = {"numeric": "is not a number", "datetime": "is not a date/time"}
FLOAT32_MAX = float(np.finfo(np.float32).max)
"""The largest magnitude a feature can hold; larger numbers are refused as out of range."""


class ModelFailed(Exception):
    """The model (or its transformer) raised on rows that passed validation: a server error."""


class _Features(ModelPackage):
    """A package whose ``predict``/``predict_proba`` also take a ready feature matrix.

    Serving validates and transforms rows itself (strictly, once); this lets it reuse the
    package's mapping from model output to labels and class probabilities unchanged.
    """

    def features(self, rows: Any) -> np.ndarray:
        if isinstance(rows, np.ndarray):
            return rows
        return super().features(rows)


@dataclass(frozen=True)
class Answer:
    """The predictions for one request's rows."""

    predictions: list[Any]
    """Class labels (classification) or values (regression; None where not finite)."""
    probabilities: list[list[float]] | None
    """Per row, one probability per class in :attr:`ServedModel.classes` order."""


Outcome = Answer | RequestRejected | ModelFailed


@dataclass
class Tally:
    """What one package answered in this server process (for metrics and serving records)."""

    since: datetime
    requests: int = 0
    """Every /invocations request this package received, whatever its status."""
    errors: int = 0
    """Answered with a server error (5xx)."""
    rejected: int = 0
    """Refused as the client's error (4xx)."""


@dataclass
class ServedModel:
    """A loaded package that answered its warm-up prediction, and what is known about it."""

    package: ModelPackage
    sha256: str
    release: dict[str, Any]
    loaded_at: datetime
    tally: Tally = field(init=False)

    def __post_init__(self) -> None:
        self.tally = Tally(since=self.loaded_at)
        kinds: dict[str, Kind] = dict(self.package.transformer.columns)
        self.columns = list(kinds)
        self.kinds = {name: kind for name, kind in kinds.items() if kind != "id"}
        self.ids = [name for name, kind in kinds.items() if kind == "id"]
        self.classes = self.package.classes if self.package.task == "classification" else None
        self._labels = None if self.classes is None else np.asarray(self.classes, dtype=object)
        transformer = self.package.transformer
        self._sources = [  # the request column each feature comes from
            encoder.name
            for encoder, width in zip(transformer.encoders_, transformer.widths_, strict=True)
            for _ in range(width)
        ]

    @property
    def name(self) -> str:
        return self.package.name

    @property
    def version(self) -> int | None:
        return self.package.version

    def answer(self, requests: list[Rows]) -> list[Outcome]:
        """Predict every request's rows, in one model call when they all validate.

        A request that fails (bad value, model error) fails alone: the others are answered
        again one by one, so one client's mistake never costs another its answer.
        """
        outcomes: list[Outcome | None] = [self._missing(rows) for rows in requests]
        pending = [i for i, outcome in enumerate(outcomes) if outcome is None]
        if len(pending) > 1:
            try:
                answers = self._predict([requests[i] for i in pending])
            except (RequestRejected, ModelFailed):
                pass  # answered one by one below, so each failure reaches its own request
            else:
                for i, answer in zip(pending, answers, strict=True):
                    outcomes[i] = answer
                pending = []
        for i in pending:
            outcomes[i] = self._answer_one(requests[i])
        return [outcome for outcome in outcomes if outcome is not None]

    def warm_up(self) -> None:
        """Answer one all-null row, so the first real request pays no first-call costs.

        Raises:
            DeploymentFailed: the package cannot answer it.
        """
        row = Rows({name: [None] for name in self.columns}, 1, text=True)
        outcome = self._answer_one(row)
        if not isinstance(outcome, Answer):
            raise DeploymentFailed(
                f"model '{self.name}' version {self.version} from {self.package.folder} failed "
                f"its warm-up prediction: {outcome}"
            )

    def _answer_one(self, rows: Rows) -> Outcome:
        try:
            return self._predict([rows])[0]
        except (RequestRejected, ModelFailed) as exc:
            return exc

    def _missing(self, rows: Rows) -> RequestRejected | None:
        missing = [name for name in self.kinds if name not in rows.columns]
        if not missing:
            return None
        listed = ", ".join(f"'{name}'" for name in missing)
        return RequestRejected(
            400,
            f"missing column{'s' if len(missing) > 1 else ''} {listed}: model '{self.name}' "
            "needs every feature column; send null for a missing value",
        )

    def _predict(self, requests: list[Rows]) -> list[Answer]:
        count = sum(rows.count for rows in requests)
        text = all(rows.text for rows in requests)
        table = pa.table(
            {
                name: self._column(name, kind, _joined(requests, name), text)
                for name, kind in self.kinds.items()
            }
        )
        try:
            features = np.zeros((count, self.package.transformer.n_features_out_), np.float32)
            with np.errstate(over="ignore"):  # an overflow is found and refused just below
                self.package.transformer.transform_into(table, features)
        except Exception as exc:  # whatever the transformer raises is the server's failure
            raise self._failed(exc) from exc
        self._check_finite(features, requests)
        try:
            if self._labels is None:
                values = np.asarray(self.package.predict(features), dtype=np.float64)
                predictions = [v if math.isfinite(v) else None for v in values.tolist()]
                probabilities = None
            else:
                # One model pass: every lockgate family predicts the most probable class.
                proba = np.asarray(self.package.predict_proba(features), dtype=np.float64)
                predictions = self._labels[proba.argmax(axis=1)].tolist()
                probabilities = proba.tolist()
        except Exception as exc:  # whatever the model raises is the server's failure, a 500
            raise self._failed(exc) from exc
        if len(predictions) != count:
            raise ModelFailed(
                f"model '{self.name}' gave {len(predictions)} predictions for {count} rows"
            )
        answers, start = [], 0
        for rows in requests:
            end = start + rows.count
            share = None if probabilities is None else probabilities[start:end]
            answers.append(Answer(predictions[start:end], share))
            start = end
        return answers

    def _failed(self, exc: Exception) -> ModelFailed:
        return ModelFailed(f"model '{self.name}' failed: {type(exc).__name__}: {exc}")

    def _check_finite(self, features: np.ndarray, requests: list[Rows]) -> None:
        """Refuse the row whose value became an infinite feature (standardising a number within
        float32's range can still overflow it), rather than fail in the model."""
        infinite = np.isinf(features)
        if not infinite.any():
            return
        row, feature = (int(i) for i in np.argwhere(infinite)[0])
        name = self._sources[feature]
        for rows in requests:
            if row < rows.count:
                break
            row -= rows.count
        raise RequestRejected(
            400,
            f"column '{name}' row {row + 1}: {_shown(rows.columns[name][row])} is out of range "
            f"for model '{self.name}' (its standardised value overflows a 32-bit float)",
        )

    def _column(self, name: str, kind: Kind, values: list[Any], text: bool) -> pa.ChunkedArray:
        array = pa.array(values, pa.string()) if text else _infer(values)
        try:
            try:
                column = coerce(array, kind, name, tolerance=0.0)
            except (pa.ArrowInvalid, pa.ArrowTypeError):
                if text:
                    raise
                # Arrow cannot convert every typed value (a category sent as 1e39 does not
                # fit the integer its text goes through): judge the values as text, as in CSV.
                array = _as_text(values)
                column = coerce(array, kind, name, tolerance=0.0)
        except FileRejected as exc:
            rejection = exc.rejection
            if rejection.row is None:
                raise RequestRejected(400, rejection.message) from None
            raise RequestRejected(
                400,
                f"column '{name}' row {rejection.row}: {rejection.value!r} "
                f"{_UNPARSEABLE.get(kind, 'is not valid')}",
            ) from None
        if kind == "numeric":
            _check_range(name, array, column)
        return column


def _check_range(name: str, sent: pa.Array, column: pa.ChunkedArray) -> None:
    """Refuse a number that is infinite or beyond float32's range (``1e400``, ``1e39``).

    ``coerce`` keeps such a number parsed from text and makes an infinite float missing;
    either way the client sent a number no feature can hold.
    """
    beyond = pc.fill_null(pc.greater(pc.abs(column), FLOAT32_MAX), False)
    if pa.types.is_floating(sent.type):
        beyond = pc.or_(beyond, pc.fill_null(pc.is_inf(sent), False))
    if not pc.any(beyond).as_py():
        return
    row = pc.index(beyond, True).as_py()
    raise RequestRejected(
        400,
        f"column '{name}' row {row + 1}: {_shown(sent[row].as_py())} is out of range "
        f"(numbers must be within ±{FLOAT32_MAX:.1e})",
    )


def _shown(value: Any) -> str:
    """A number as sent (``1e400``), shortened if it is very long."""
    text = value.strip() if isinstance(value, str) else repr(value)
    return text if len(text) <= 40 else f"{text[:24]}... ({len(text)} characters)"


def _joined(requests: list[Rows], name: str) -> list[Any]:
    if len(requests) == 1:
        return requests[0].columns[name]
    return [value for rows in requests for value in rows.columns[name]]


def _infer(values: list[Any]) -> pa.Array:
    """JSON values as one Arrow array; a column mixing numbers and strings becomes strings,
    which the strict coercion then parses (so ``"3"`` is a number and ``"abc"`` is refused),
    and so does one with an integer beyond int64 (parsed as a float, as it would be in CSV)."""
    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):  # OverflowError: beyond int64
        return _as_text(values)


def _as_text(values: list[Any]) -> pa.Array:
    return pa.array([None if v is None else str(v) for v in values], pa.string())


def load_served(model_dir: Path, release: dict[str, Any] | None = None) -> ServedModel:
    """Load, verify and warm up the package in ``model_dir``.

    Raises:
        DeploymentFailed: the package is missing, damaged, or fails its warm-up prediction.
    """
    folder = Path(model_dir)
    try:
        sha256 = package_sha256(folder)
        loaded = load_package(folder)
    except Exception as exc:  # unpickling can raise anything; the old package keeps serving
        raise DeploymentFailed(f"cannot load the model package in {folder}: {exc}") from exc
    package = _Features(loaded.folder, loaded.info, loaded.schema, loaded.model, loaded.transformer)
    served = ServedModel(package, sha256, dict(release or {}), datetime.now(UTC))
    served.warm_up()
    return served
