"""POST /invocations, /ping, /version and /metrics against a real server and package."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from lockgate.pipelines.training.package import load_package, package_sha256, read_package_json
from lockgate.serving.app import create_app
from lockgate.serving.batching import INLINE_ROWS
from tests.serving.conftest import (
    COLUMNS,
    FEATURES,
    Packages,
    Running,
    Sample,
    assert_close,
    expected_probabilities,
    metric_values,
    serving,
)

LIMIT = 64 * 1024


@pytest.fixture(scope="module")
def server(packages: Packages) -> Iterator[Running]:
    app = create_app(packages.boosted, release={"seq": 7}, max_body_bytes=LIMIT)
    with serving(app) as running:
        yield running


def probabilities(reply_json: dict[str, object]) -> list[list[float]]:
    predictions = reply_json["predictions"]
    assert isinstance(predictions, list)
    return [[item["probabilities"]["0"], item["probabilities"]["1"]] for item in predictions]


def test_ping_answers_once_the_model_is_loaded(server: Running) -> None:
    reply = server.call("GET", "/ping")
    assert reply.status == 200


def test_headerless_csv_lists_every_column_in_schema_order(
    server: Running, sample: Sample, packages: Packages
) -> None:
    reply = server.predict(sample.csv(3), "text/csv", accept="application/json")
    assert reply.status == 200, reply.body
    document = reply.json()
    assert [item["customer_id"] for item in document["predictions"]] == sample.ids(3)
    assert_close(
        probabilities(document), expected_probabilities(packages.boosted, sample.records(3))
    )
    for item in document["predictions"]:
        best = max(item["probabilities"], key=item["probabilities"].get)
        assert item["prediction"] == best
    assert (document["model"], document["model_version"]) == ("churn", 2)
    assert document["inference_id"] == reply.headers["x-inference-id"]


def test_csv_answers_csv_by_default_one_line_per_row(
    server: Running, sample: Sample, packages: Packages
) -> None:
    reply = server.predict(sample.csv(4), "text/csv")
    assert reply.status == 200, reply.body
    assert reply.headers["content-type"].startswith("text/csv")
    lines = reply.csv()
    assert [line[0] for line in lines] == sample.ids(4)
    expected = expected_probabilities(packages.boosted, sample.records(4))
    assert_close([[float(p) for p in line[2:]] for line in lines], expected)
    assert [line[1] for line in lines] == [str(int(p[1] > p[0])) for p in expected]


def test_csv_with_a_header_may_reorder_columns_and_leave_out_the_id(
    server: Running, sample: Sample, packages: Packages
) -> None:
    shuffled = list(reversed(FEATURES))
    reply = server.predict(
        sample.csv(3, columns=shuffled, header=True), "text/csv", "application/json"
    )
    assert reply.status == 200, reply.body
    predictions = reply.json()["predictions"]
    assert all("customer_id" not in item for item in predictions)
    assert_close(
        probabilities(reply.json()), expected_probabilities(packages.boosted, sample.records(3))
    )


def test_a_header_with_an_extra_column_is_still_a_header(server: Running, sample: Sample) -> None:
    lines = [",".join([*COLUMNS, "churned"])]
    lines += [line + ",0" for line in sample.csv(2).decode().splitlines()]
    reply = server.predict("\n".join(lines).encode(), "text/csv")
    assert reply.status == 200, reply.body
    assert [line[0] for line in reply.csv()] == sample.ids(2)


@pytest.mark.parametrize(
    "shape",
    ["record", "records", "instances", "split", "lists", "dataframe_split", "dataframe_records"],
)
def test_every_json_shape_gives_the_same_predictions(
    server: Running, sample: Sample, packages: Packages, shape: str
) -> None:
    count = 1 if shape == "record" else 3
    records = sample.records(count)
    body = {
        "record": records[0],
        "records": records,
        "instances": {"instances": records},
        "dataframe_records": {"dataframe_records": records},
        "split": {"columns": COLUMNS, "data": [list(r.values()) for r in records]},
        "dataframe_split": {
            "dataframe_split": {"columns": COLUMNS, "data": [list(r.values()) for r in records]}
        },
        "lists": [list(record.values()) for record in records],
    }[shape]
    reply = server.predict(body)
    assert reply.status == 200, reply.body
    assert reply.headers["content-type"] == "application/json"
    assert [item["customer_id"] for item in reply.json()["predictions"]] == sample.ids(count)
    assert_close(probabilities(reply.json()), expected_probabilities(packages.boosted, records))


def test_json_lines_and_json_may_leave_out_the_id(
    server: Running, sample: Sample, packages: Packages
) -> None:
    records = sample.records(3, FEATURES)
    body = "\n".join(json.dumps(record) for record in records).encode() + b"\n"
    reply = server.predict(body, "application/jsonlines", accept="text/csv")
    assert reply.status == 200, reply.body
    lines = reply.csv()
    assert len(lines) == 3 and all(len(line) == 3 for line in lines)  # prediction, p(0), p(1)
    expected = expected_probabilities(packages.boosted, records)
    assert_close([[float(p) for p in line[1:]] for line in lines], expected)


def test_nulls_and_empty_fields_are_missing_values(server: Running, sample: Sample) -> None:
    record = dict.fromkeys(FEATURES)
    assert server.predict(record).status == 200
    assert server.predict(b"," * (len(COLUMNS) - 1) + b"\n").status == 200


def test_sagemakers_inference_id_is_used(server: Running, sample: Sample) -> None:
    reply = server.call(
        "POST",
        "/invocations",
        sample.csv(1),
        {
            "Content-Type": "text/csv",
            "Accept": "application/json",
            "X-Amzn-SageMaker-Inference-Id": "order-1234",
        },
    )
    assert reply.headers["x-inference-id"] == "order-1234"
    assert reply.json()["inference_id"] == "order-1234"


@pytest.mark.parametrize(
    ("accept", "kind"),
    [
        ("application/json", "application/json"),
        ("text/csv", "text/csv"),
        ("*/*", "text/csv"),
        ("text/html, application/json;q=0.5", "application/json"),
        ("text/csv;q=0.2, application/json", "application/json"),
    ],
)
def test_accept_picks_the_answer_format(
    server: Running, sample: Sample, accept: str, kind: str
) -> None:
    reply = server.predict(sample.csv(1), "text/csv", accept=accept)
    assert reply.status == 200
    assert reply.headers["content-type"].startswith(kind)


def test_an_unanswerable_accept_is_406(server: Running, sample: Sample) -> None:
    reply = server.predict(sample.csv(1), "text/csv", accept="application/x-protobuf")
    assert reply.status == 406
    assert "application/x-protobuf" in reply.error


def test_rows_of_one_request_are_answered_together_with_others(
    server: Running, sample: Sample, packages: Packages
) -> None:
    # Concurrent requests share model calls; a bad one among them must fail alone.
    bodies = [sample.csv(1 + i % 3) for i in range(12)]
    bodies[5] = Sample([sample.rows[0], {**sample.rows[1], "tenure_months": "lots"}]).csv(2)
    with ThreadPoolExecutor(8) as pool:
        replies = list(pool.map(lambda body: server.predict(body, "text/csv"), bodies))
    assert replies[5].status == 400
    assert replies[5].error == "column 'tenure_months' row 2: 'lots' is not a number"
    expected = expected_probabilities(packages.boosted, sample.records(3))
    for index, reply in enumerate(replies):
        if index == 5:
            continue
        assert reply.status == 200, reply.body
        lines = reply.csv()
        assert [line[0] for line in lines] == sample.ids(1 + index % 3)
        got = [[float(p) for p in line[2:]] for line in lines]
        assert_close(got, expected[: len(lines)])


def test_a_large_request_is_answered_whole(
    server: Running, sample: Sample, packages: Packages
) -> None:
    body = sample.csv(50) * 6
    assert 300 > INLINE_ROWS  # predicted in the worker thread, not on the event loop
    reply = server.predict(body, "text/csv", accept="application/json")
    assert reply.status == 200, reply.body
    predictions = reply.json()["predictions"]
    assert [item["customer_id"] for item in predictions] == sample.ids(50) * 6
    expected = expected_probabilities(packages.boosted, sample.records(50) * 6)
    assert_close(probabilities(reply.json()), expected)


@pytest.mark.parametrize(
    ("body", "content_type", "status", "words"),
    [
        (b"", "text/csv", 400, "empty"),
        (b"\n\n", "text/csv", 400, "empty"),
        (b"<rows/>", "application/xml", 415, "application/xml"),
        (b'{"tenure_months": 3,', "application/json", 400, "not valid JSON"),
        (b'[{"a": 1}, [1]]', "application/json", 400, "row 2 is a JSON list"),
        (b"[]", "application/json", 400, "no rows"),
        (b"42", "application/json", 400, "is a number"),
        (b'{"instances": {"a": 1}}', "application/json", 400, "'instances' must be a list"),
        (b'{"tenure_months": [1, 2]}', "application/json", 400, "column 'tenure_months' row 1"),
        (b'{"x": 1}\nnot json\n', "application/jsonlines", 400, "line 2 is not valid JSON"),
        (b'"a,b\n', "text/csv", 400, "malformed CSV"),
        (b"\xff\xfe,1\n", "text/csv", 400, "not UTF-8"),
    ],
)
def test_malformed_bodies_are_refused_with_what_is_wrong(
    server: Running, body: bytes, content_type: str, status: int, words: str
) -> None:
    reply = server.predict(body, content_type)
    assert reply.status == status
    assert words in reply.error


def test_no_content_type_is_415(server: Running, sample: Sample) -> None:
    reply = server.call("POST", "/invocations", sample.csv(1), {})
    assert reply.status == 415
    assert "text/csv" in reply.error


def test_a_ragged_csv_row_is_refused_by_number(server: Running, sample: Sample) -> None:
    lines = sample.csv(4).decode().splitlines()
    lines[2] = ",".join(lines[2].split(",")[:5])
    reply = server.predict("\n".join(lines).encode(), "text/csv")
    assert reply.status == 400
    assert reply.error.startswith("row 3 has 5 fields, expected 11 (customer_id, signup_date,")


def test_a_missing_feature_column_is_named(server: Running, sample: Sample) -> None:
    columns = [name for name in FEATURES if name != "tenure_months"]
    for body in (sample.csv(2, columns=columns, header=True), sample.records(2, columns)):
        reply = server.predict(body, "text/csv" if isinstance(body, bytes) else None)
        assert reply.status == 400
        assert "missing column 'tenure_months'" in reply.error


def test_a_record_without_a_column_the_others_have_is_named(
    server: Running, sample: Sample
) -> None:
    records = sample.records(3)
    del records[1]["plan"]
    reply = server.predict(records)
    assert reply.status == 400
    assert reply.error == "row 2 has no column 'plan'"


def test_a_value_of_the_wrong_type_is_named_with_its_row(server: Running, sample: Sample) -> None:
    records = sample.records(3)
    records[1]["tenure_months"] = "abc"
    reply = server.predict(records)
    assert reply.status == 400
    assert reply.error == "column 'tenure_months' row 2: 'abc' is not a number"

    records = sample.records(2)
    records[0]["signup_date"] = "yesterday"
    reply = server.predict(records)
    assert reply.status == 400
    assert reply.error == "column 'signup_date' row 1: 'yesterday' is not a date/time"


def test_a_body_over_the_limit_is_413_whether_or_not_its_length_is_declared(
    server: Running, sample: Sample
) -> None:
    one = sample.csv(1)
    body = one * (LIMIT // len(one) + 1)
    reply = server.predict(body, "text/csv")
    assert reply.status == 413
    assert str(LIMIT) in reply.error

    chunks = iter([one] * (LIMIT // len(one) + 1))
    reply = server.call("POST", "/invocations", chunks, {"Content-Type": "text/csv"})
    assert reply.status == 413
    assert str(LIMIT) in reply.error

    under = one * (LIMIT // len(one) - 1)
    reply = server.call("POST", "/invocations", iter([under]), {"Content-Type": "text/csv"})
    assert reply.status == 200
    assert len(reply.csv()) == LIMIT // len(one) - 1


def test_version_describes_the_package_and_its_release(server: Running, packages: Packages) -> None:
    document = server.call("GET", "/version").json()
    assert document["model"] == "churn"
    assert document["version"] == 2
    assert document["package_sha256"] == package_sha256(packages.boosted)
    assert document["data_version"] == read_package_json(packages.boosted)["data_version"]
    assert document["release"] == {"seq": 7}
    assert document["loaded_at"]
    assert document["lockgate_version"]


def test_a_model_that_fails_is_a_counted_server_error(packages: Packages, sample: Sample) -> None:
    with serving(create_app(packages.fragile)) as server:
        good = server.predict(sample.csv(2), "text/csv")
        records = sample.records(2)
        records[1]["tenure_months"] = 1e9  # valid, but beyond what this model handles
        failed = server.predict(records)
        refused = server.predict(b"", "text/csv")
        after = server.predict(sample.csv(1), "text/csv")
        metrics = server.call("GET", "/metrics")

    assert (good.status, failed.status, refused.status, after.status) == (200, 500, 400, 200)
    assert "model 'churn' failed" in failed.error
    assert "out of the range" in failed.error
    assert metrics.headers["content-type"].startswith("text/plain")
    values = metric_values(metrics.body.decode())
    assert values['lockgate_requests_total{code="200"}'] == 2
    assert values['lockgate_requests_total{code="500"}'] == 1
    assert values['lockgate_requests_total{code="400"}'] == 1
    assert values["lockgate_errors_total"] == 1
    assert values["lockgate_rows_predicted_total"] == 3
    assert values["lockgate_request_duration_seconds_count"] == 4
    assert values['lockgate_request_duration_seconds_bucket{le="+Inf"}'] == 4
    assert values["lockgate_request_duration_seconds_sum"] > 0
    buckets = [v for k, v in values.items() if k.startswith("lockgate_request_duration_seconds_b")]
    assert buckets == sorted(buckets)  # cumulative
    info = [key for key in values if key.startswith("lockgate_model_info")]
    assert info == [
        f'lockgate_model_info{{model="churn",version="3",package_sha256="'
        f'{server.service.version()["package_sha256"]}"}}'
    ]


def test_a_regression_model_answers_values(regression_package: Path, sample: Sample) -> None:
    columns = [name for name in COLUMNS if name != "total_charges"]
    records = sample.records(3, columns)
    with serving(create_app(regression_package)) as server:
        as_json = server.predict(records)
        as_csv = server.predict(sample.csv(3, columns=columns), "text/csv")
    assert as_json.status == 200, as_json.body
    predictions = as_json.json()["predictions"]
    assert [set(item) for item in predictions] == [{"customer_id", "prediction"}] * 3
    expected = load_package(regression_package).predict(records)
    assert_close([item["prediction"] for item in predictions], expected)
    assert as_csv.status == 200, as_csv.body
    lines = as_csv.csv()
    assert [line[0] for line in lines] == sample.ids(3)
    assert_close([float(line[1]) for line in lines], expected)
    assert all(len(line) == 2 for line in lines)


def test_no_bad_request_is_a_server_error(server: Running, sample: Sample) -> None:
    for body in (
        b"\x00" * 100,
        b"[[[[[[",
        b'{"a": {"b": 1}}',
        b"1e999",
        b"[" * 50_000,
        b'{"tenure_months": 1180591620717411303424}',
        b"\xef\xbb\xbf",
    ):
        for content_type in ("text/csv", "application/json", "application/jsonlines"):
            assert server.predict(body, content_type).status in (400, 413)
    for value in ("1e400", "1e39", "-1e39", str(10**400)):
        csv_body, json_body = with_value(sample, "total_charges", value)
        for body, content_type in ((csv_body, "text/csv"), (json_body, "application/json")):
            assert server.predict(body, content_type).status == 400
    assert server.call("GET", "/ping").status == 200
    values = metric_values(server.call("GET", "/metrics").body.decode())
    assert values["lockgate_errors_total"] == 0


def with_value(sample: Sample, column: str, value: str) -> tuple[bytes, bytes]:
    """Two rows, the second with ``value`` (as written) in ``column``: as CSV and as JSON."""
    csv_rows = Sample([sample.rows[0], {**sample.rows[1], column: value}]).csv(2)
    records = sample.records(2)
    records[1][column] = "__value__"
    json_body = json.dumps(records).replace('"__value__"', value).encode()
    return csv_rows, json_body


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("1e400", "1e400"),  # infinite as a float64
        ("-1e400", "-1e400"),
        ("1e39", None),  # finite, but no float32 feature holds it
        ("1" + "0" * 39, None),  # the same as an integer
    ],
)
def test_a_number_beyond_float32_is_refused_by_column_and_row(
    server: Running, sample: Sample, value: str, shown: str | None
) -> None:
    csv_body, json_body = with_value(sample, "tenure_months", value)
    for body, content_type in ((csv_body, "text/csv"), (json_body, "application/json")):
        reply = server.predict(body, content_type)
        assert reply.status == 400, (content_type, reply.body)
        assert reply.error.startswith("column 'tenure_months' row 2: "), reply.error
        assert " is out of range" in reply.error
    # As sent: the JSON parser keeps an overflowing number's text; CSV always has it.
    if shown is not None:
        assert server.predict(json_body, "application/json").error.startswith(
            f"column 'tenure_months' row 2: {shown} is out of range"
        )


def test_json_infinity_is_refused_like_the_string_inf_and_nan_is_missing(
    server: Running, sample: Sample
) -> None:
    for value, word in (("Infinity", "Infinity"), ("-Infinity", "-Infinity"), ('"inf"', "inf")):
        _, body = with_value(sample, "monthly_charges", value)
        reply = server.predict(body, "application/json")
        assert reply.status == 400
        assert reply.error == f"column 'monthly_charges' row 2: '{word}' is not a number"
    # Python's json writes NaN for a missing float: it is one.
    _, body = with_value(sample, "monthly_charges", "NaN")
    with_nan = server.predict(body, "application/json")
    _, body = with_value(sample, "monthly_charges", "null")
    assert with_nan.status == 200
    without = server.predict(body, "application/json")
    assert with_nan.json()["predictions"] == without.json()["predictions"]


def test_a_json_integer_beyond_int64_is_read_as_the_same_number_in_csv_is(
    server: Running, sample: Sample
) -> None:
    big = 2**70
    records = sample.records(2)
    records[0]["tenure_months"], records[1]["tenure_months"] = 12, big  # integers only
    as_json = server.predict(records)
    rows = [sample.rows[0] | {"tenure_months": "12"}, sample.rows[1] | {"tenure_months": str(big)}]
    as_csv = server.predict(Sample(rows).csv(2), "text/csv", accept="application/json")
    assert (as_json.status, as_csv.status) == (200, 200), (as_json.body, as_csv.body)
    assert as_json.json()["predictions"] == as_csv.json()["predictions"]

    records[0]["plan"], records[1]["plan"] = 1, big  # unseen categories, not an error
    assert server.predict(records).status == 200


def test_json_nested_too_deeply_is_400(server: Running) -> None:
    deep = 10_000  # far past Python's recursion limit, well within the body limit
    for body, content_type, where in (
        (b"[" * deep, "application/json", "body"),
        (b'{"a": ' * deep, "application/json", "body"),
        (b'{"a": 1}\n' + b"[" * deep, "application/jsonlines", "line 2"),
    ):
        reply = server.predict(body, content_type)
        assert reply.status == 400
        assert reply.error == (
            f"{where} nests JSON arrays or objects too deeply to read; send rows of plain values"
        )


def test_a_json_integer_too_long_to_convert_is_400(server: Running) -> None:
    reply = server.predict(b'{"tenure_months": ' + b"1" * 5000 + b"}", "application/json")
    assert reply.status == 400
    assert reply.error.startswith("body has an integer of more than ")


@pytest.mark.parametrize("header", [True, False])
def test_a_csv_body_with_a_byte_order_mark_is_read_as_without(
    server: Running, sample: Sample, header: bool
) -> None:
    body = sample.csv(3, header=header)
    reply = server.predict(b"\xef\xbb\xbf" + body, "text/csv", accept="application/json")
    assert reply.status == 200, reply.body
    assert [item["customer_id"] for item in reply.json()["predictions"]] == sample.ids(3)
    plain = server.predict(body, "text/csv", accept="application/json")
    assert reply.json()["predictions"] == plain.json()["predictions"]


def test_a_json_body_with_a_byte_order_mark_is_read_as_without(
    server: Running, sample: Sample
) -> None:
    records = sample.records(2)
    lines = "\n".join(json.dumps(record) for record in records).encode()
    for body, content_type in (
        (json.dumps(records).encode(), "application/json"),
        (lines, "application/jsonlines"),
    ):
        reply = server.predict(b"\xef\xbb\xbf" + body, content_type)
        assert reply.status == 200, reply.body
        assert [item["customer_id"] for item in reply.json()["predictions"]] == sample.ids(2)
