"""Schema inference for `lockgate init`: column kinds and task from a sample file."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from lockgate.errors import ConfigError
from lockgate.pipelines.data.inference import infer_schema
from lockgate.sample.churn import CHURN_COLUMNS, CHURN_TARGET, generate_churn

CsvFactory = Callable[..., Path]


@pytest.mark.parametrize("gzip", [False, True], ids=["csv", "csv.gz"])
def test_churn_sample_gives_the_documented_kinds_and_classification(
    churn_csv: CsvFactory, gzip: bool
) -> None:
    path = churn_csv("churn.csv.gz" if gzip else "churn.csv", rows=800, gzip=gzip)

    task, columns = infer_schema(path, CHURN_TARGET)

    assert task == "classification"
    assert columns == CHURN_COLUMNS
    assert list(columns) == list(CHURN_COLUMNS)  # file order, as lockgate.toml lists them


def test_float_target_with_many_values_is_regression(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    table = pa.table(
        {
            "rooms": pa.array(rng.integers(1, 8, 300)),
            "area": pa.array(rng.normal(80, 20, 300)),
            "price": pa.array(np.round(rng.normal(300_000, 50_000, 300), 2)),
        }
    )
    path = tmp_path / "houses.csv"
    pacsv.write_csv(table, path)

    task, columns = infer_schema(path, "price")

    assert task == "regression"
    assert columns == {"rooms": "numeric", "area": "numeric"}


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([0, 1] * 50, "classification"),
        ([1.0, 2.0, 3.0] * 30, "classification"),  # whole-number floats: a few labels
        (list(range(100)), "regression"),  # many distinct integers: a count or amount
        (["cat", "dog"] * 20, "classification"),
    ],
    ids=["binary-int", "whole-floats", "many-ints", "strings"],
)
def test_target_kind_decides_the_task(tmp_path: Path, values: list[object], expected: str) -> None:
    path = tmp_path / "data.csv"
    pacsv.write_csv(pa.table({"x": pa.array(range(len(values))), "target": values}), path)

    task, _ = infer_schema(path, "target")

    assert task == expected


def test_missing_target_is_a_config_error_listing_the_columns(churn_csv: CsvFactory) -> None:
    path = churn_csv(rows=50)

    with pytest.raises(ConfigError) as caught:
        infer_schema(path, "cancelled")

    message = str(caught.value)
    assert "'cancelled'" in message
    assert "customer_id" in message
    assert CHURN_TARGET in message


def test_unreadable_file_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "junk.parquet"
    path.write_bytes(b"PAR1 this is not parquet")

    with pytest.raises(ConfigError, match=r"junk\.parquet"):
        infer_schema(path, "y")


def codes_csv(tmp_path: Path) -> Path:
    path = tmp_path / "codes.csv"
    rows = [f"{['007', '010', '123'][i % 3]},{['a', 'b'][i % 2]},{i % 2}" for i in range(60)]
    path.write_text("branch,segment,y\n" + "\n".join(rows) + "\n")
    return path


def test_short_repeated_strings_are_categorical(tmp_path: Path) -> None:
    _, columns = infer_schema(codes_csv(tmp_path), "y")

    assert columns["segment"] == "categorical"


def test_zero_padded_codes_are_categorical(tmp_path: Path) -> None:
    _, columns = infer_schema(codes_csv(tmp_path), "y")

    assert columns["branch"] == "categorical"


@pytest.mark.parametrize("fmt", ["parquet", "jsonl"])
def test_parquet_and_jsonl_samples_infer_like_csv(tmp_path: Path, fmt: str) -> None:
    table = generate_churn(500, seed=3)
    path = tmp_path / f"churn.{fmt}"
    if fmt == "parquet":
        pq.write_table(table, path)
    else:
        rows = table.to_pylist()
        lines = [json.dumps({**row, "signup_date": row["signup_date"].isoformat()}) for row in rows]
        path.write_text("\n".join(lines) + "\n")

    task, columns = infer_schema(path, CHURN_TARGET)

    assert task == "classification"
    assert columns == CHURN_COLUMNS
