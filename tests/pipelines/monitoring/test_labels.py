"""Ground-truth labels: reading label files, storing them as SageMaker records, joining them."""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from lockgate.local.file_store import FileStore
from lockgate.pipelines.monitoring.labels import (
    Label,
    LabelError,
    Prediction,
    join_labels,
    put_labels,
    read_label_file,
    read_labels,
)

NOW = datetime(2026, 11, 26, 10, 56, 8, 123456, tzinfo=UTC)


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# -- label files -----------------------------------------------------------------------------


def test_a_csv_gives_one_label_per_row_with_the_ids_asked_for(tmp_path: Path) -> None:
    path = write(
        tmp_path / "truth.csv",
        "inference_id,customer_id,churned,note\n"
        "inf-1,42,1,called support\n"
        "inf-1,43,0,\n"
        "inf-2,7,0,\n",
    )

    with_ids = read_label_file(path, "churned", ["customer_id"])
    without_ids = read_label_file(tmp_path / "truth.csv", "churned")

    assert with_ids == [
        Label("inf-1", "1", {"customer_id": "42"}),
        Label("inf-1", "0", {"customer_id": "43"}),
        Label("inf-2", "0", {"customer_id": "7"}),
    ]
    # Without ids, the two labels of inf-1 are for the same prediction: the later one wins.
    assert without_ids == [Label("inf-1", "0"), Label("inf-2", "0")]


def test_json_lines_and_gzip_and_a_byte_order_mark_are_read(tmp_path: Path) -> None:
    jsonl = write(
        tmp_path / "truth.jsonl",
        '{"inference_id": "a", "churned": 1, "customer_id": 42}\n'
        "\n"
        '{"inference_id": "b", "churned": true, "customer_id": "x"}\n',
    )
    packed = tmp_path / "truth.csv.gz"
    packed.write_bytes(gzip.compress("\ufeffinference_id,churned\nc,yes\n".encode()))

    assert read_label_file(jsonl, "churned", ["customer_id"]) == [
        Label("a", "1", {"customer_id": "42"}),
        Label("b", "true", {"customer_id": "x"}),
    ]
    assert read_label_file(packed, "churned") == [Label("c", "yes")]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        (
            "truth.csv",
            "id,churned\na,1\n",
            "truth.csv: no column 'inference_id' in the header (id, churned); "
            "label files need inference_id, churned",
        ),
        ("truth.csv", "inference_id,label\na,1\n", "no column 'churned' in the header"),
        ("truth.csv", "", "truth.csv is empty; write a header line inference_id,churned"),
        ("truth.csv", "inference_id,churned\n\n", "truth.csv has no labels; write one per"),
        ("truth.csv", "inference_id,churned\na,1\nb,\n", "truth.csv, line 3: 'churned' is empty"),
        ("truth.csv", "inference_id,churned\na,1\n,0\n", "line 3: 'inference_id' is empty"),
        ("truth.csv", "inference_id,churned\na,1,x\n", "line 2: 3 fields where the header has 2"),
        ("truth.jsonl", '{"inference_id": "a", "churned": 1}\n{oops\n', "line 2: not JSON"),
        ("truth.jsonl", '{"inference_id": "a"}\n', "line 1: no 'churned' key"),
        ("truth.jsonl", "[1, 2]\n", "truth.jsonl, line 1: a JSON object is expected"),
        ("truth.jsonl", "", "truth.jsonl has no labels"),
        ("truth.parquet", "x", "label files are .csv or .jsonl (optionally .gz)"),
    ],
)
def test_a_bad_label_file_is_refused_naming_the_file_and_line(
    tmp_path: Path, name: str, content: str, message: str
) -> None:
    path = write(tmp_path / name, content)

    with pytest.raises(LabelError) as error:
        read_label_file(path, "churned")

    assert message in str(error.value)


def test_a_missing_id_column_is_named(tmp_path: Path) -> None:
    path = write(tmp_path / "truth.csv", "inference_id,churned\na,1\n")

    with pytest.raises(LabelError) as error:
        read_label_file(path, "churned", ["customer_id"])

    assert "no column 'customer_id' in the header (inference_id, churned)" in str(error.value)


def test_a_missing_file_is_a_label_error(tmp_path: Path) -> None:
    with pytest.raises(LabelError, match=r"absent\.csv does not exist"):
        read_label_file(tmp_path / "absent.csv", "churned")


# -- the store -------------------------------------------------------------------------------


def stored_records(store: FileStore, key: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in store.get(key).decode().splitlines()]


def test_labels_are_stored_as_sagemaker_ground_truth_under_the_upload_hour(
    file_store: FileStore,
) -> None:
    paris = timezone(timedelta(hours=1))
    labels = [Label("inf-1", "1", {"customer_id": "42"}), Label("inf-2", "0")]

    key = put_labels(file_store, "churn-prod", labels, NOW.astimezone(paris))

    assert key.startswith("monitoring/ground-truth/churn-prod/2026/11/26/10/56-08-123-")
    assert key.endswith(".jsonl")
    assert stored_records(file_store, key) == [
        {
            "groundTruthData": {"data": "1", "encoding": "CSV"},
            "eventMetadata": {"eventId": "inf-1"},
            "eventVersion": "0",
            "lockgateIds": {"customer_id": "42"},
        },
        {
            "groundTruthData": {"data": "0", "encoding": "CSV"},
            "eventMetadata": {"eventId": "inf-2"},
            "eventVersion": "0",
        },
    ]


def test_each_put_writes_its_own_file(file_store: FileStore) -> None:
    first = put_labels(file_store, "churn", [Label("a", "1")], NOW)
    second = put_labels(file_store, "churn", [Label("b", "1")], NOW)

    assert first != second
    assert len(list(file_store.list("monitoring/ground-truth/churn/"))) == 2


def test_a_label_with_a_comma_is_csv_quoted_and_read_back_whole(file_store: FileStore) -> None:
    label = Label("a", 'gold, "premium"')

    key = put_labels(file_store, "churn", [label], NOW)

    [record] = stored_records(file_store, key)
    assert record["groundTruthData"] == {"data": '"gold, ""premium"""', "encoding": "CSV"}
    assert read_labels(file_store, "churn") == [label]


def test_labels_are_read_from_the_hour_of_since_on_and_later_ones_win(
    file_store: FileStore,
) -> None:
    put_labels(file_store, "churn", [Label("old", "1")], NOW - timedelta(hours=2))
    put_labels(file_store, "churn", [Label("a", "1"), Label("b", "0")], NOW - timedelta(hours=1))
    put_labels(file_store, "churn", [Label("a", "0")], NOW)
    put_labels(file_store, "churn-v2", [Label("other", "1")], NOW)
    file_store.put("monitoring/ground-truth/churn/README.txt", b"not labels")

    since_last_hour = read_labels(file_store, "churn", NOW.replace(minute=59) - timedelta(hours=1))
    everything = read_labels(file_store, "churn", None)

    assert since_last_hour == [Label("a", "0"), Label("b", "0")]
    assert everything == [Label("old", "1"), Label("a", "0"), Label("b", "0")]


def test_records_written_by_other_tools_without_lockgate_ids_are_read(
    file_store: FileStore,
) -> None:
    record = {
        "groundTruthData": {"data": "1", "encoding": "CSV"},
        "eventMetadata": {"eventId": "aaaa-bbbb-cccc"},
        "eventVersion": "0",
    }
    file_store.put(
        "monitoring/ground-truth/churn/2026/11/26/10/manual.jsonl", json.dumps(record).encode()
    )

    assert read_labels(file_store, "churn") == [Label("aaaa-bbbb-cccc", "1")]


def test_a_broken_stored_record_names_its_key_and_line(file_store: FileStore) -> None:
    key = "monitoring/ground-truth/churn/2026/11/26/10/broken.jsonl"
    file_store.put(
        key, b'{"groundTruthData": {"data": "1"}, "eventMetadata": {"eventId": "a"}}\n{}\n'
    )

    with pytest.raises(LabelError) as error:
        read_labels(file_store, "churn")

    assert str(error.value).startswith(f"{key}, line 2: not a ground-truth record")
    assert "fix or delete the file" in str(error.value)


def test_nothing_to_store_and_bad_endpoint_names_are_refused(file_store: FileStore) -> None:
    with pytest.raises(LabelError, match="no labels to store for endpoint 'churn'"):
        put_labels(file_store, "churn", [], NOW)
    with pytest.raises(LabelError, match="'a/b' is not an endpoint name"):
        put_labels(file_store, "a/b", [Label("a", "1")], NOW)


# -- joining ---------------------------------------------------------------------------------

PREDICTIONS = [
    Prediction("single", 0, {"customer_id": "1"}, 0.9),
    Prediction("batch", 0, {"customer_id": "42"}, 0.2),
    Prediction("batch", 1, {"customer_id": "43"}, 0.7),
    Prediction("twins", 0, {"customer_id": "5"}, 0.1),
    Prediction("twins", 1, {"customer_id": "5"}, 0.3),
]


def test_labels_join_by_inference_id_and_by_ids_within_a_request() -> None:
    labels = [
        Label("single", "1"),
        Label("batch", "1", {"customer_id": "43"}),
        Label("batch", "0", {"customer_id": "42.0"}),  # numbers compare by value
    ]

    joined = join_labels(labels, PREDICTIONS)

    assert [(label.label, p.row_index, p.prediction) for label, p in joined.matched] == [
        ("1", 0, 0.9),
        ("1", 1, 0.7),
        ("0", 0, 0.2),
    ]
    assert (joined.unknown, joined.ambiguous, joined.examples) == (0, 0, [])
    assert joined.describe() == "3 labels matched"


@dataclass
class Scored:
    """A caller's own prediction type, with more than the join needs."""

    inference_id: str
    ids: dict[str, str]
    probabilities: dict[str, float]


def test_the_callers_own_predictions_come_back_matched() -> None:
    scored = Scored("x", {"customer_id": "1"}, {"yes": 0.8, "no": 0.2})

    joined = join_labels([Label("x", "yes")], [scored])

    [(label, prediction)] = joined.matched
    assert label == Label("x", "yes")
    assert prediction.probabilities["yes"] == 0.8


def test_unknown_and_ambiguous_labels_are_counted_with_examples_never_raised() -> None:
    labels = [
        Label("never-captured", "1"),
        Label("batch", "1", {"customer_id": "99"}),
        Label("batch", "1"),
        Label("twins", "1", {"customer_id": "5"}),
        Label("single", "0"),
    ]

    joined = join_labels(labels, PREDICTIONS)

    assert len(joined.matched) == 1
    assert (joined.unknown, joined.ambiguous) == (2, 2)
    assert joined.examples == [
        "inference id 'never-captured' is not in the captured traffic",
        "inference id 'batch' has no row with customer_id=99",
        "inference id 'batch' is a request of 2 rows; add an id column (e.g. customer_id) "
        "to say which row a label is for",
        "inference id 'twins' has 2 rows with customer_id=5; add id columns",
    ]
    assert joined.describe() == (
        "1 label matched; 2 for predictions not captured; 2 ambiguous "
        "(e.g. inference id 'never-captured' is not in the captured traffic)"
    )


def test_at_most_five_examples_are_kept() -> None:
    joined = join_labels([Label(f"missing-{n}", "1") for n in range(8)], PREDICTIONS)

    assert joined.unknown == 8
    assert len(joined.examples) == 5
