"""Read one raw file (csv, parquet, jsonl; gzip-compressed or not) into an Arrow table.

Only the configured columns are read. What cannot be read becomes a :class:`FileRejected`
naming the rule broken, so the file can be quarantined while the others are prepared.
"""

from __future__ import annotations

import gzip
import threading
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.json as pajson
import pyarrow.parquet as pq

from lockgate.pipelines.data.rejection import FileRejected, Rejection

NULL_VALUES = ["", "NA", "N/A", "n/a", "NaN", "nan", "null", "NULL", "None", "none", "#N/A"]
SNIFF_BYTES = 64 * 1024
FORMATS = ("csv", "parquet", "jsonl")


def detect_format(path: Path, head: bytes) -> tuple[str, bool]:
    """The file's format and whether it is gzip-compressed, from its name, else its bytes."""
    name = path.name.lower()
    compressed = head[:2] == b"\x1f\x8b"
    if name.endswith(".gz"):
        name = name[:-3]
    if name.endswith((".parquet", ".pq")) or head[:4] == b"PAR1":
        return "parquet", False
    if name.endswith((".jsonl", ".ndjson", ".json")):
        return "jsonl", compressed
    if compressed:
        with gzip.open(path, "rb") as handle:
            inner = handle.read(64)
        if inner.lstrip()[:1] == b"{":
            return "jsonl", True
    elif head.lstrip()[:1] == b"{":
        return "jsonl", False
    return "csv", compressed


def read_raw_file(
    path: Path, wanted: dict[str, pa.DataType | None], max_invalid_fraction: float
) -> tuple[pa.Table, int]:
    """Read ``path``, keeping the ``wanted`` columns (typed where a type is given).

    Returns:
        The table, and the number of malformed rows skipped (CSV rows with a wrong field count).

    Raises:
        FileRejected: empty, binary, not UTF-8, unreadable, a wanted column missing, no data
            rows, or more malformed rows than the tolerance allows.
    """
    with open(path, "rb") as handle:
        head = handle.read(SNIFF_BYTES)
    if not head:
        raise FileRejected(Rejection("empty", "the file is empty (0 bytes)"))
    fmt, compressed = detect_format(path, head)
    if fmt != "parquet" and not compressed and b"\x00" in head:
        raise FileRejected(
            Rejection("binary", "the file holds binary data (NUL bytes), not csv or jsonl text")
        )
    try:
        if fmt == "parquet":
            table, malformed = _read_parquet(path, wanted), 0
        elif fmt == "jsonl":
            table, malformed = _read_jsonl(path, compressed), 0
        else:
            table, malformed = _read_csv(path, wanted, compressed, max_invalid_fraction)
    except FileRejected:
        raise
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, OSError) as exc:
        raise FileRejected(_classify(exc, fmt)) from None
    missing = [name for name in wanted if name not in table.column_names]
    if missing:
        found = ", ".join(table.column_names[:12]) or "none"
        raise FileRejected(
            Rejection(
                "missing_column",
                f"column '{missing[0]}' is missing (missing: {', '.join(missing)}; "
                f"the file has: {found})",
                column=missing[0],
            )
        )
    if table.num_rows == 0:
        raise FileRejected(Rejection("no_rows", "the file has a header but no data rows"))
    return table.select(list(wanted)), malformed


def _classify(exc: Exception, fmt: str) -> Rejection:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if "UTF8" in text or "utf8" in text or "UTF-8" in text:
        return Rejection(
            "encoding",
            f"the file is not valid UTF-8 ({text}); re-save it as UTF-8, "
            "e.g. `iconv -f latin1 -t utf-8`",
        )
    if "Empty CSV file" in text:
        return Rejection("empty", "the file has no header and no rows")
    return Rejection("unreadable", f"cannot read it as {fmt}: {text}")


def _read_csv(
    path: Path, wanted: dict[str, pa.DataType | None], compressed: bool, tolerance: float
) -> tuple[pa.Table, int]:
    malformed: list[tuple[int | None, str]] = []
    lock = threading.Lock()

    def skip_malformed(row: Any) -> str:
        with lock:
            malformed.append((row.number, str(row.text)[:200]))
        return "skip"

    read_options = pacsv.ReadOptions(block_size=16 << 20)
    parse_options = pacsv.ParseOptions(invalid_row_handler=skip_malformed, newlines_in_values=True)
    # Read the header first so a missing column is reported by name, not as an Arrow error.
    with _open(path, compressed) as source:
        header = pacsv.open_csv(
            source,
            read_options=pacsv.ReadOptions(block_size=1 << 16),
            parse_options=pacsv.ParseOptions(invalid_row_handler=lambda _row: "skip"),
            convert_options=pacsv.ConvertOptions(
                column_types=dict.fromkeys(wanted, pa.string())
            ),
        ).schema.names
    present = [name for name in wanted if name in header]
    convert_options = pacsv.ConvertOptions(
        include_columns=present,
        column_types={name: kind for name, kind in wanted.items() if kind is not None},
        null_values=NULL_VALUES,
        strings_can_be_null=True,
        quoted_strings_can_be_null=True,
    )
    with _open(path, compressed) as source:
        table = pacsv.read_csv(
            source,
            read_options=read_options,
            parse_options=parse_options,
            convert_options=convert_options,
        )
    total = table.num_rows + len(malformed)
    if malformed and len(malformed) > tolerance * total:
        number, text = min(malformed, key=lambda item: item[0] or 0)
        raise FileRejected(
            Rejection(
                "malformed_rows",
                f"{len(malformed)} of {total} rows have the wrong number of fields "
                f"(tolerance {tolerance:.1%}); first at line {number}: {text!r}",
                row=number,
                value=text,
            )
        )
    return table, len(malformed)


def _open(path: Path, compressed: bool) -> Any:
    if compressed:
        return pa.CompressedInputStream(pa.OSFile(str(path)), "gzip")
    return pa.memory_map(str(path))


def _read_parquet(path: Path, wanted: dict[str, pa.DataType | None]) -> pa.Table:
    names = pq.read_schema(path).names
    return pq.read_table(path, columns=[name for name in wanted if name in names])


def _read_jsonl(path: Path, compressed: bool) -> pa.Table:
    with _open(path, compressed) as source:
        return pajson.read_json(source)
