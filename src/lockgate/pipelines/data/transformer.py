"""The fitted transformer: raw columns in, a float32 feature matrix out.

It follows scikit-learn's transformer API (``fit``/``transform``/``fit_transform``/
``get_feature_names_out``/``get_params``/``set_params``, so ``sklearn.base.clone`` and
``Pipeline`` accept it) but is built on Arrow tables, so preparation never round-trips through
pandas or Python objects, and it does not import scikit-learn (two seconds of start-up) unless
a text column needs its TF-IDF vectorizer. It is what ``transformer.pkl`` holds, and what an
endpoint applies to request rows before the model.

Per column kind:

* numeric: impute the training median, standardise; a ``__missing`` indicator when training
  had nulls;
* categorical: one-hot of the ``max_categories`` most frequent values seen at least
  ``rare_min_frequency`` of the time; rarer or unseen values go to ``__other__``, nulls to
  ``__missing__``;
* text: TF-IDF over at most ``text_max_features`` terms (vocabulary fitted on a seeded sample);
* datetime: standardised days since the epoch plus cyclic month, weekday and hour, and a
  ``__missing`` indicator;
* id: never a feature.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lockgate.pipelines.data.columns import Kind, coerce

TRANSFORM_CHUNK = 1 << 16
MICROS_PER_DAY = 86_400 * 1_000_000


@dataclass
class _Numeric:
    name: str
    median: float = 0.0
    mean: float = 0.0
    scale: float = 1.0
    indicate_missing: bool = False

    def fit(self, column: pa.ChunkedArray) -> None:
        values = column.to_numpy(zero_copy_only=False)
        present = values[~np.isnan(values)]
        self.median = float(np.median(present)) if present.size else 0.0
        filled = np.where(np.isnan(values), self.median, values)
        self.mean = float(filled.mean()) if filled.size else 0.0
        std = float(filled.std()) if filled.size else 0.0
        self.scale = std if std > 0 and np.isfinite(std) else 1.0
        self.indicate_missing = column.null_count > 0

    def names(self) -> list[str]:
        return [self.name] + ([f"{self.name}__missing"] if self.indicate_missing else [])

    def write(self, column: pa.ChunkedArray, out: np.ndarray) -> None:
        values = column.to_numpy(zero_copy_only=False)
        missing = np.isnan(values)
        out[:, 0] = (np.where(missing, self.median, values) - self.mean) / self.scale
        if self.indicate_missing:
            out[:, 1] = missing


@dataclass
class _Categorical:
    name: str
    min_frequency: float
    max_categories: int
    categories: list[str] = field(default_factory=list)

    def fit(self, column: pa.ChunkedArray) -> None:
        counts = pc.value_counts(column.drop_null()).to_pylist()
        total = max(len(column), 1)
        ranked = sorted(counts, key=lambda item: (-item["counts"], item["values"]))
        self.categories = [
            item["values"]
            for item in ranked[: self.max_categories]
            if item["counts"] / total >= self.min_frequency
        ]

    def names(self) -> list[str]:
        return [f"{self.name}={value}" for value in self.categories] + [
            f"{self.name}=__other__",
            f"{self.name}=__missing__",
        ]

    def write(self, column: pa.ChunkedArray, out: np.ndarray) -> None:
        known = pa.array(self.categories, pa.string())
        other, missing = len(self.categories), len(self.categories) + 1
        start = 0
        for chunk in column.chunks:
            # Map the chunk's (small) dictionary to output columns once, then index by code.
            mapping = pc.fill_null(pc.index_in(chunk.dictionary, value_set=known), other)
            lookup = np.append(mapping.to_numpy(zero_copy_only=False), other)
            indices = pc.fill_null(chunk.indices, len(chunk.dictionary))
            codes = lookup[indices.to_numpy(zero_copy_only=False)]
            if chunk.null_count:
                codes = np.where(chunk.is_null().to_numpy(zero_copy_only=False), missing, codes)
            rows = np.arange(start, start + len(chunk))
            out[rows, codes] = 1.0
            start += len(chunk)


@dataclass
class _Text:
    name: str
    max_features: int
    fit_rows: int
    seed: int
    vectorizer: Any = None

    def fit(self, column: pa.ChunkedArray) -> None:
        from sklearn.feature_extraction.text import TfidfVectorizer

        texts = column.drop_null()
        if len(texts) > self.fit_rows:
            rng = np.random.default_rng(self.seed)
            picks = np.sort(rng.choice(len(texts), size=self.fit_rows, replace=False))
            texts = texts.take(pa.array(picks))
        vectorizer = TfidfVectorizer(
            max_features=self.max_features, sublinear_tf=True, dtype=np.float32
        )
        try:
            vectorizer.fit(texts.to_pylist())
        except ValueError:  # no words at all (empty or null column): no text features
            self.vectorizer = None
            return
        # The pruned-terms set pickles in hash order; dropping it keeps transformer.pkl
        # byte-identical across runs (scikit-learn documents it as safe to delete).
        if hasattr(vectorizer, "stop_words_"):
            delattr(vectorizer, "stop_words_")
        self.vectorizer = vectorizer

    def __getstate__(self) -> dict[str, Any]:
        # scikit-learn stores id(stop_words) on every transform, a memory address: without
        # dropping it, transformer.pkl would differ from process to process.
        if self.vectorizer is not None:
            self.vectorizer.__dict__.pop("_stop_words_id", None)
        return dict(self.__dict__)

    def names(self) -> list[str]:
        if self.vectorizer is None:
            return []
        return [f"{self.name}~{term}" for term in self.vectorizer.get_feature_names_out()]

    def write(self, column: pa.ChunkedArray, out: np.ndarray) -> None:
        if self.vectorizer is None:
            return
        texts = pc.fill_null(column, "").to_pylist()
        out[:, :] = self.vectorizer.transform(texts).toarray()


@dataclass
class _Datetime:
    name: str
    median_days: float = 0.0
    mean_days: float = 0.0
    scale_days: float = 1.0

    def fit(self, column: pa.ChunkedArray) -> None:
        days = _days(column)
        present = days[~np.isnan(days)]
        self.median_days = float(np.median(present)) if present.size else 0.0
        filled = np.where(np.isnan(days), self.median_days, days)
        self.mean_days = float(filled.mean()) if filled.size else 0.0
        std = float(filled.std()) if filled.size else 0.0
        self.scale_days = std if std > 0 else 1.0

    def names(self) -> list[str]:
        parts = ["days", "month_sin", "month_cos", "weekday_sin", "weekday_cos"]
        parts += ["hour_sin", "hour_cos", "missing"]
        return [f"{self.name}__{part}" for part in parts]

    def write(self, column: pa.ChunkedArray, out: np.ndarray) -> None:
        days = _days(column)
        missing = np.isnan(days)
        out[:, 0] = (np.where(missing, self.median_days, days) - self.mean_days) / self.scale_days
        for offset, (part, period) in enumerate(
            ((pc.month(column), 12.0), (pc.day_of_week(column), 7.0), (pc.hour(column), 24.0))
        ):
            angle = 2 * np.pi * pc.fill_null(part, 0).to_numpy(zero_copy_only=False) / period
            out[:, 1 + 2 * offset] = np.where(missing, 0.0, np.sin(angle))
            out[:, 2 + 2 * offset] = np.where(missing, 0.0, np.cos(angle))
        out[:, 7] = missing


def _days(column: pa.ChunkedArray) -> np.ndarray:
    micros = column.cast(pa.int64()).to_numpy(zero_copy_only=False)
    if column.null_count:
        micros = np.where(pc.is_null(column).to_numpy(zero_copy_only=False), np.nan, micros)
    return np.asarray(micros, dtype=np.float64) / MICROS_PER_DAY


class TabularTransformer:
    """Raw table -> float32 features, fitted on training rows only.

    Args:
        columns: feature columns and their kind (``id`` columns are dropped).
        target: the target column's name (never a feature).
        task: ``classification`` or ``regression``.
        rare_min_frequency, max_categories, text_max_features, text_fit_rows, seed: see
            :class:`lockgate.config.PrepConfig`.
    """

    def __init__(
        self,
        columns: Mapping[str, str],
        target: str,
        task: str = "classification",
        rare_min_frequency: float = 0.001,
        max_categories: int = 50,
        text_max_features: int = 128,
        text_fit_rows: int = 100_000,
        seed: int = 42,
    ) -> None:
        self.columns = dict(columns)
        self.target = target
        self.task = task
        self.rare_min_frequency = rare_min_frequency
        self.max_categories = max_categories
        self.text_max_features = text_max_features
        self.text_fit_rows = text_fit_rows
        self.seed = seed

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The constructor arguments (scikit-learn's estimator protocol)."""
        return {
            "columns": dict(self.columns),
            "target": self.target,
            "task": self.task,
            "rare_min_frequency": self.rare_min_frequency,
            "max_categories": self.max_categories,
            "text_max_features": self.text_max_features,
            "text_fit_rows": self.text_fit_rows,
            "seed": self.seed,
        }

    def set_params(self, **params: Any) -> TabularTransformer:
        for name, value in params.items():
            if name not in self.get_params():
                raise ValueError(f"TabularTransformer has no parameter '{name}'")
            setattr(self, name, value)
        return self

    def fit_transform(self, rows: Any, y: Any = None) -> np.ndarray:
        return self.fit(rows).transform(rows)

    def __repr__(self) -> str:
        kinds = ", ".join(f"{name}={kind}" for name, kind in self.columns.items())
        return f"TabularTransformer(target={self.target!r}, task={self.task!r}, columns=[{kinds}])"

    def fit(self, table: pa.Table, y: Any = None) -> TabularTransformer:
        """Fit every column's encoder on ``table`` (training rows; any form ``transform`` takes)."""
        table = self._as_table(table)
        encoders: list[Any] = []
        for name, kind in self.columns.items():
            if kind == "id":
                continue
            encoder: Any
            if kind == "numeric":
                encoder = _Numeric(name)
            elif kind == "categorical":
                encoder = _Categorical(name, self.rare_min_frequency, self.max_categories)
            elif kind == "text":
                encoder = _Text(name, self.text_max_features, self.text_fit_rows, self.seed)
            elif kind == "datetime":
                encoder = _Datetime(name)
            else:
                raise ValueError(f"column '{name}' has unknown kind '{kind}'")
            encoder.fit(table.column(name))
            encoders.append(encoder)
        self.encoders_ = encoders
        self.widths_ = [len(encoder.names()) for encoder in encoders]
        self.n_features_out_ = int(sum(self.widths_))
        return self

    def fit_target(self, target: pa.ChunkedArray) -> np.ndarray:
        """Fit the label encoding (classification) and return ``y`` for ``target``."""
        if self.task == "classification":
            values = pc.unique(target.drop_null()).to_pylist()
            self.classes_ = sorted(values, key=_class_order)
        return self.transform_target(target)

    def transform_target(self, target: pa.ChunkedArray) -> np.ndarray:
        """``y``: class indices (int64) for classification, float32 values for regression."""
        if self.task == "classification":
            index = pc.index_in(target, value_set=pa.array(self.classes_, pa.string()))
            if index.null_count:
                unseen = pc.filter(target, pc.is_null(index)).drop_null()
                raise ValueError(f"label {unseen[0].as_py()!r} was not seen in training")
            return np.asarray(index.to_numpy(zero_copy_only=False), dtype=np.int64)
        return np.asarray(target.to_numpy(zero_copy_only=False), dtype=np.float32)

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        names: list[str] = []
        for encoder in self.encoders_:
            names.extend(encoder.names())
        return np.asarray(names, dtype=object)

    def transform(self, rows: Any) -> np.ndarray:
        """Features for ``rows``: an Arrow table, a mapping of columns, a list of row dicts or a
        pandas DataFrame. Values that cannot be parsed count as missing."""
        table = self._as_table(rows)
        out = np.zeros((table.num_rows, self.n_features_out_), dtype=np.float32)
        self.transform_into(table, out)
        return out

    def transform_into(self, table: pa.Table, out: np.ndarray) -> None:
        """Write the features of ``table`` (canonical types) into ``out``, which must be zeros."""
        for start in range(0, table.num_rows, TRANSFORM_CHUNK):
            chunk = table.slice(start, TRANSFORM_CHUNK)
            rows = out[start : start + chunk.num_rows]
            offset = 0
            for encoder, width in zip(self.encoders_, self.widths_, strict=True):
                if width:
                    encoder.write(chunk.column(encoder.name), rows[:, offset : offset + width])
                offset += width

    def _as_table(self, rows: Any) -> pa.Table:
        if isinstance(rows, pa.Table):
            table = rows
        elif isinstance(rows, Mapping):
            table = pa.table({name: _column(list(values)) for name, values in rows.items()})
        elif isinstance(rows, Sequence):
            table = _table_from_rows(list(rows), list(self.columns))
        else:  # a pandas DataFrame; object columns may mix numbers and strings
            table = pa.table({str(name): _column(list(rows[name])) for name in rows.columns})
        columns = {}
        for name, kind in self.columns.items():
            if kind == "id":
                continue
            if name in table.column_names:
                column = table.column(name)
            else:
                column = pa.chunked_array([pa.nulls(table.num_rows)])
            coerce_kind: Kind = kind  # type: ignore[assignment]
            columns[name] = coerce(column, coerce_kind, name, tolerance=None)
        return pa.table(columns) if columns else pa.table({"_": pa.nulls(table.num_rows)})


def _table_from_rows(rows: list[Any], names: list[str]) -> pa.Table:
    """Request rows (dicts) as a table; a column mixing numbers and strings becomes strings,
    which the per-kind coercion then parses."""
    columns = {
        name: _column([row.get(name) if isinstance(row, Mapping) else None for row in rows])
        for name in names
    }
    return pa.table(columns) if columns else pa.table({"_": pa.nulls(len(rows))})


def _column(values: list[Any]) -> pa.Array:
    """Values as an Arrow array; mixed numbers and strings become strings (parsed later)."""
    values = [None if _is_missing(value) else value for value in values]
    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return pa.array([None if v is None else str(v) for v in values], pa.string())


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and value != value)


def _class_order(value: str) -> tuple[int, float, str]:
    """Numeric-looking labels sort numerically ("2" < "10"), the rest alphabetically."""
    try:
        return (0, float(value), value)
    except ValueError:
        return (1, 0.0, value)
