"""Reading raw files: every bad input gets its rule and a clear message; good ones agree."""

from __future__ import annotations

import gzip
import json
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from lockgate.pipelines.data.columns import Kind, coerce, read_type
from lockgate.pipelines.data.reading import detect_format, read_raw_file
from lockgate.pipelines.data.rejection import FileRejected, Rejection

TOLERANCE = 0.01

KINDS: dict[str, Kind] = {
    "customer_id": "id",
    "zip_code": "categorical",
    "amount": "numeric",
    "visits": "numeric",
    "note": "text",
    "seen_at": "datetime",
    "label": "label",
}
WANTED = {name: read_type(kind) for name, kind in KINDS.items()}

ROWS: list[dict[str, Any]] = [
    {
        "customer_id": f"C-{i:04d}",
        "zip_code": ["007", "0420", "12345", None][i % 4],
        "amount": None if i % 5 == 0 else round(10.25 * i - 3.5, 2),
        "visits": i % 7,
        "note": None if i % 6 == 0 else f'call {i}, said: "slow" again',
        "seen_at": None
        if i % 9 == 0
        else f"2025-{1 + i % 12:02d}-{1 + i % 28:02d}T0{i % 10}:30:00Z",
        "label": ["yes", "no"][i % 2],
    }
    for i in range(40)
]


def reject(path: Path, wanted: dict[str, pa.DataType | None] | None = None) -> Rejection:
    with pytest.raises(FileRejected) as caught:
        read_raw_file(path, WANTED if wanted is None else wanted, TOLERANCE)
    return caught.value.rejection


def canonical(table: pa.Table) -> pa.Table:
    """The table as preparation sees it: every column coerced to its kind's type."""
    return pa.table(
        {name: coerce(table.column(name), kind, name, TOLERANCE) for name, kind in KINDS.items()}
    )


def write_csv_text(path: Path, rows: list[dict[str, Any]]) -> Path:
    """A CSV as a spreadsheet exports it: quoted only where needed, empty for null."""
    table = pa.Table.from_pylist(rows)
    pacsv.write_csv(table, path, pacsv.WriteOptions(quoting_style="needed"))
    return path


def write_jsonl(path: Path, rows: list[dict[str, Any]], compress: bool = False) -> Path:
    text = "".join(json.dumps(row) + "\n" for row in rows).encode()
    path.write_bytes(gzip.compress(text, mtime=0) if compress else text)
    return path


# ---------------------------------------------------------------- bad inputs


def test_empty_file_is_rejected_as_empty(tmp_path: Path) -> None:
    path = tmp_path / "empty.csv"
    path.write_bytes(b"")

    rejection = reject(path)

    assert rejection.rule == "empty"
    assert "empty" in rejection.message


def test_header_only_is_rejected_as_no_rows(tmp_path: Path) -> None:
    path = tmp_path / "header.csv"
    path.write_text(",".join(KINDS) + "\n")

    rejection = reject(path)

    assert rejection.rule == "no_rows"
    assert "no data rows" in rejection.message


def test_header_only_without_final_newline_is_rejected_as_no_rows(tmp_path: Path) -> None:
    path = tmp_path / "header.csv"
    path.write_text(",".join(KINDS))

    rejection = reject(path)

    assert rejection.rule == "no_rows"


def test_header_only_gzip_is_rejected_as_no_rows(tmp_path: Path) -> None:
    path = tmp_path / "header.csv.gz"
    path.write_bytes(gzip.compress((",".join(KINDS) + "\n").encode()))

    assert reject(path).rule == "no_rows"


@pytest.mark.parametrize("name", ["junk.csv", "junk.jsonl", "junk"])
def test_binary_junk_is_rejected_as_binary(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(np.random.default_rng(3).integers(0, 256, 4096, dtype=np.uint8).tobytes())

    rejection = reject(path)

    assert rejection.rule == "binary"
    assert "binary" in rejection.message


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(b"\x1f\x8bjunk\x00\x00\xff" * 20, id="bad-gzip-header"),
        pytest.param(b"\x1f\x8b\x08\x00junk\x00\x00\xff" * 20, id="bad-deflate-block"),
        pytest.param(
            gzip.compress(b"".join(b"%d,%d\n" % (i, i * 7919 % 997) for i in range(999)))[:30],
            id="truncated-after-a-few-bytes",
        ),
    ],
)
def test_corrupt_gzip_is_rejected_not_a_crash(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "upload.csv.gz"
    path.write_bytes(content)

    rejection = reject(path)

    assert rejection.rule in ("unreadable", "binary")


def test_truncated_large_gzip_is_rejected_as_unreadable(tmp_path: Path) -> None:
    body = b"".join(f"{i},{i * 7919 % 1000},x{i}\n".encode() for i in range(100_000))
    packed = gzip.compress(b"a,b,c\n" + body)
    path = tmp_path / "cut.csv.gz"
    path.write_bytes(packed[: len(packed) // 2])

    rejection = reject(path, {"a": None, "b": None})

    assert rejection.rule == "unreadable"
    assert "csv" in rejection.message


@pytest.mark.parametrize("compress", [False, True], ids=["plain", "gzip"])
def test_latin1_csv_is_rejected_as_encoding_and_says_utf8(tmp_path: Path, compress: bool) -> None:
    rows = [{**row, "note": "Müller paid at the café"} for row in ROWS]
    text = pa.Table.from_pylist(rows).to_pandas().to_csv(index=False).encode("latin-1")
    path = tmp_path / ("latin1.csv.gz" if compress else "latin1.csv")
    path.write_bytes(gzip.compress(text) if compress else text)

    rejection = reject(path)

    assert rejection.rule == "encoding"
    assert "UTF-8" in rejection.message


def test_latin1_deep_in_a_large_csv_is_still_rejected_as_encoding(tmp_path: Path) -> None:
    lines = [f"C-{i},{i % 10},{i}.5,{i % 3},note {i},2025-01-01,yes" for i in range(60_000)]
    lines.append("C-x,1,1.5,1,Zürich office,2025-01-01,no")
    path = tmp_path / "late.csv"
    path.write_bytes(("\n".join([",".join(KINDS), *lines]) + "\n").encode("latin-1"))

    assert reject(path).rule == "encoding"


def test_latin1_jsonl_is_rejected_as_encoding(tmp_path: Path) -> None:
    rows = [{**row, "note": "Müller paid at the café"} for row in ROWS]
    text = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    path = tmp_path / "latin1.jsonl"
    path.write_bytes(text.encode("latin-1"))

    rejection = reject(path)

    assert rejection.rule == "encoding"
    assert "UTF-8" in rejection.message


@pytest.mark.parametrize("missing", ["label", "amount"], ids=["target", "feature"])
@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_missing_column_is_rejected_naming_it(tmp_path: Path, missing: str, fmt: str) -> None:
    rows = [{k: v for k, v in row.items() if k != missing} for row in ROWS]
    path = tmp_path / f"data.{fmt}"
    if fmt == "csv":
        write_csv_text(path, rows)
    elif fmt == "jsonl":
        write_jsonl(path, rows)
    else:
        pq.write_table(pa.Table.from_pylist(rows), path)

    rejection = reject(path)

    assert rejection.rule == "missing_column"
    assert rejection.column == missing
    assert f"'{missing}'" in rejection.message
    assert "zip_code" in rejection.message  # says what the file does have


def test_too_many_unparseable_numbers_reject_with_row_column_and_value() -> None:
    values = [str(i) for i in range(100)]
    values[17] = "12,5"
    values[40] = "n/a?"
    values[90] = "lots"

    with pytest.raises(FileRejected) as caught:
        coerce(pa.array(values), "numeric", "amount", 0.02)

    rejection = caught.value.rejection
    assert rejection.rule == "unparseable_values"
    assert rejection.column == "amount"
    assert rejection.row == 18  # 1-based data row of the first bad value
    assert rejection.value == "12,5"
    assert "'12,5'" in rejection.message
    assert "amount" in rejection.message
    assert "3 of 100" in rejection.message


def test_unparseable_numbers_from_a_csv_report_the_data_row(tmp_path: Path) -> None:
    lines = [f"{i},{i * 2}" for i in range(50)]
    lines[30] = "30,thirty"
    lines[31] = "31,?"
    path = tmp_path / "bad.csv"
    path.write_text("visits,amount\n" + "\n".join(lines) + "\n")
    table, _ = read_raw_file(path, {"visits": None, "amount": None}, TOLERANCE)

    with pytest.raises(FileRejected) as caught:
        coerce(table.column("amount"), "numeric", "amount", TOLERANCE)

    assert caught.value.rejection.row == 31
    assert caught.value.rejection.value == "thirty"


def test_a_few_unparseable_numbers_within_tolerance_become_nulls() -> None:
    values: list[str | None] = [f"{i}.5" for i in range(200)]
    values[3] = "oops"
    values[150] = None

    column = coerce(pa.array(values), "numeric", "amount", 0.01)

    assert column.type == pa.float64()
    out = column.to_pylist()
    assert out[3] is None
    assert out[150] is None
    assert out[4] == 4.5
    assert column.null_count == 2


def test_numbers_in_common_spellings_parse() -> None:
    column = coerce(pa.array([" 1.5 ", "-2e3", "+.5", "7", "1E-2"]), "numeric", "n", 0.0)

    assert column.to_pylist() == [1.5, -2000.0, 0.5, 7.0, 0.01]


def test_too_many_unparseable_dates_reject_with_the_value() -> None:
    values = ["2025-01-02"] * 10 + ["next tuesday"] * 2

    with pytest.raises(FileRejected) as caught:
        coerce(pa.array(values), "datetime", "seen_at", 0.1)

    rejection = caught.value.rejection
    assert rejection.rule == "unparseable_values"
    assert rejection.row == 11
    assert rejection.value == "next tuesday"


def test_malformed_rows_above_tolerance_reject_with_the_offending_text(tmp_path: Path) -> None:
    path = tmp_path / "ragged.csv"
    path.write_text("a,b\n1,x\n2,y,EXTRA\n3,z\n4\n")

    rejection = reject(path, {"a": None, "b": pa.string()})

    assert rejection.rule == "malformed_rows"
    assert "2 of 4 rows" in rejection.message
    assert "2,y,EXTRA" in rejection.message
    assert rejection.value == "2,y,EXTRA"


def test_malformed_rows_rejection_names_the_row(tmp_path: Path) -> None:
    path = tmp_path / "ragged.csv"
    path.write_text("a,b\n1,x\n2,y,EXTRA\n3,z\n4\n")

    rejection = reject(path, {"a": None, "b": pa.string()})

    assert "None" not in rejection.message
    assert rejection.row == 2  # data row, header not counted (Rejection.row's contract)


def test_malformed_rows_within_tolerance_are_skipped_and_counted(tmp_path: Path) -> None:
    lines = [f"{i},v{i}" for i in range(300)]
    lines[100] = "100,v100,surplus"
    lines[200] = "200"
    path = tmp_path / "mostly-fine.csv"
    path.write_text("a,b\n" + "\n".join(lines) + "\n")

    table, malformed = read_raw_file(path, {"a": None, "b": pa.string()}, TOLERANCE)

    assert malformed == 2
    assert table.num_rows == 298
    assert 100 not in table.column("a").to_pylist()
    assert 200 not in table.column("a").to_pylist()


# ---------------------------------------------------------------- good inputs


def test_csv_gzip_parquet_and_jsonl_give_the_same_table(tmp_path: Path) -> None:
    source = pa.Table.from_pylist(ROWS)
    paths = {
        "csv": write_csv_text(tmp_path / "d.csv", ROWS),
        "csv.gz": tmp_path / "d.csv.gz",
        "parquet": tmp_path / "d.parquet",
        "jsonl": write_jsonl(tmp_path / "d.jsonl", ROWS),
        "jsonl.gz": write_jsonl(tmp_path / "d.jsonl.gz", ROWS, compress=True),
    }
    paths["csv.gz"].write_bytes(gzip.compress(paths["csv"].read_bytes()))
    pq.write_table(source, paths["parquet"])

    tables = {}
    for fmt, path in paths.items():
        table, malformed = read_raw_file(path, WANTED, TOLERANCE)
        assert malformed == 0
        tables[fmt] = canonical(table)

    expected = tables["parquet"]
    assert expected.num_rows == len(ROWS)
    assert expected.column("zip_code").to_pylist()[:4] == ["007", "0420", "12345", None]
    for fmt, table in tables.items():
        assert table.equals(expected), fmt


def test_timestamps_stored_in_parquet_match_the_same_times_written_as_text(
    tmp_path: Path,
) -> None:
    text = pa.array(["2025-03-01T10:00:00Z", "2025-03-01T12:30:00+02:00", None])
    typed = pa.array(
        [datetime(2025, 3, 1, 10), datetime(2025, 3, 1, 10, 30), None], pa.timestamp("ms", "UTC")
    )
    pq.write_table(pa.table({"seen_at": typed}), tmp_path / "t.parquet")
    table, _ = read_raw_file(tmp_path / "t.parquet", {"seen_at": None}, TOLERANCE)

    assert coerce(table.column("seen_at"), "datetime", "seen_at", 0.0).equals(
        coerce(text, "datetime", "seen_at", 0.0)
    )


def test_only_the_wanted_columns_are_returned_in_the_asked_order(tmp_path: Path) -> None:
    path = write_csv_text(tmp_path / "wide.csv", ROWS)

    table, _ = read_raw_file(path, {"label": pa.string(), "amount": None}, TOLERANCE)

    assert table.column_names == ["label", "amount"]
    assert table.num_rows == len(ROWS)


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_categorical_codes_keep_their_leading_zeros(tmp_path: Path, fmt: str) -> None:
    rows = [{"zip_code": code, "label": "a"} for code in ["007", "00501", "0", "010"]]
    path = tmp_path / f"zips.{fmt}"
    if fmt == "csv":
        path.write_text("zip_code,label\n" + "".join(f"{r['zip_code']},a\n" for r in rows))
    elif fmt == "jsonl":
        write_jsonl(path, rows)
    else:
        pq.write_table(pa.Table.from_pylist(rows), path)

    table, _ = read_raw_file(path, {"zip_code": read_type("categorical")}, TOLERANCE)
    column = coerce(table.column("zip_code"), "categorical", "zip_code", TOLERANCE)

    assert column.to_pylist() == ["007", "00501", "0", "010"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2025-06-30T22:15:00Z", datetime(2025, 6, 30, 22, 15)),
        ("2025-06-30T23:15:00+01:00", datetime(2025, 6, 30, 22, 15)),
        ("2025-07-01T03:45:00+05:30", datetime(2025, 6, 30, 22, 15)),
        ("2025-06-30T17:15:00-05:00", datetime(2025, 6, 30, 22, 15)),
        ("2025-06-30 22:15:00", datetime(2025, 6, 30, 22, 15)),
        ("2025-06-30T22:15", datetime(2025, 6, 30, 22, 15)),
        ("2025-06-30", datetime(2025, 6, 30)),
        ("2025/06/30", datetime(2025, 6, 30)),
        ("30.06.2025", datetime(2025, 6, 30)),
    ],
)
def test_datetime_strings_parse_to_utc(text: str, expected: datetime) -> None:
    column = coerce(pa.array([text, None]), "datetime", "seen_at", 0.0)

    assert column.type == pa.timestamp("us")
    assert column.to_pylist() == [expected, None]


def test_mixed_datetime_formats_in_one_csv_column_parse(tmp_path: Path) -> None:
    path = tmp_path / "dates.csv"
    path.write_text(
        "seen_at,n\n2025-06-30T22:15:00Z,1\n2025-06-30,2\n2025-06-30T23:15:00+01:00,3\n,4\n"
    )

    table, _ = read_raw_file(path, {"seen_at": None}, TOLERANCE)
    column = coerce(table.column("seen_at"), "datetime", "seen_at", 0.0)

    assert column.to_pylist() == [
        datetime(2025, 6, 30, 22, 15),
        datetime(2025, 6, 30),
        datetime(2025, 6, 30, 22, 15),
        None,
    ]


@pytest.mark.parametrize("text", ["2025-06-30T22:15:00.250Z", "2025-06-30T22:15:00.25"])
def test_iso_datetime_with_fractional_seconds_parses(text: str) -> None:
    alone = coerce(pa.array([text, None]), "datetime", "seen_at", 0.0)
    mixed = coerce(pa.array([text, "30.06.2025"]), "datetime", "seen_at", 0.0)

    assert alone.to_pylist() == [datetime(2025, 6, 30, 22, 15, 0, 250_000), None]
    # next to other formats the value still parses (to the second)
    assert mixed.to_pylist()[0].replace(microsecond=0) == datetime(2025, 6, 30, 22, 15)


@pytest.mark.parametrize(
    ("name", "head", "expected"),
    [
        ("data.csv", b"a,b\n1,2\n", ("csv", False)),
        ("data.CSV.GZ", gzip.compress(b"a,b\n"), ("csv", True)),
        ("events.jsonl", b'{"a": 1}\n', ("jsonl", False)),
        ("events.ndjson.gz", gzip.compress(b'{"a": 1}\n'), ("jsonl", True)),
        ("upload", b'  {"a": 1}\n', ("jsonl", False)),
        ("upload.gz", gzip.compress(b'{"a": 1}\n'), ("jsonl", True)),
        ("upload.gz", gzip.compress(b"a,b\n"), ("csv", True)),
        ("upload", b"PAR1\x15\x04", ("parquet", False)),
        ("table.pq", b"PAR1", ("parquet", False)),
    ],
)
def test_format_is_detected_from_name_else_content(
    tmp_path: Path, name: str, head: bytes, expected: tuple[str, bool]
) -> None:
    path = tmp_path / name
    path.write_bytes(head)

    assert detect_format(path, head) == expected


def test_file_without_extension_is_read_by_content(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "upload", ROWS, compress=True)

    table, _ = read_raw_file(path, WANTED, TOLERANCE)

    assert table.num_rows == len(ROWS)
    assert table.column_names == list(KINDS)


def test_a_column_that_turns_to_text_in_a_later_piece_is_read_as_text(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lockgate.pipelines.data import reading

    monkeypatch.setattr(reading, "PIECE_BYTES", 2048)  # many pieces from a small file
    rows = [f"{i},{i * 0.5},c{i % 3}" for i in range(2000)]
    rows[1500] = "1500,oops,c0"
    path = tmp_path / "late.csv"
    path.write_text("id,a,b\n" + "\n".join(rows) + "\n")

    table, malformed = reading.read_raw_file(path, {"a": None, "b": pa.string()}, 0.01, False)

    assert malformed == 0 and table.num_rows == 2000
    assert table.schema.field("a").type == pa.string()
    values = coerce(table.column("a"), "numeric", "a", 0.01)
    assert values.null_count == 1 and values[1501].as_py() == 750.5
