"""Infer a dataset's schema from a sample file, for ``lockgate init``."""

from __future__ import annotations

import re
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from lockgate.errors import ConfigError
from lockgate.pipelines.data.columns import coerce
from lockgate.pipelines.data.reading import NULL_VALUES, detect_format, read_raw_file

SAMPLE_ROWS = 50_000
ID_NAME = re.compile(r"(^|_)(id|uuid|guid|key)$|^id_", re.IGNORECASE)


def infer_schema(path: Path, target: str) -> tuple[str, dict[str, str]]:
    """``(task, {column: kind})`` for the file at ``path``; the target is not in the mapping.

    Raises:
        ConfigError: the file cannot be read, or it has no column named ``target``.
    """
    table = _sample(path)
    if target not in table.column_names:
        raise ConfigError(
            f"{path} has no column '{target}' to use as target "
            f"(columns: {', '.join(table.column_names)})"
        )
    integers = [n for n in table.column_names if pa.types.is_integer(table.schema.field(n).type)]
    # Arrow reads "007" as the integer 7: look at integer columns as text to keep such codes.
    as_text = _sample(path, as_text=integers) if integers else None
    columns = {}
    for name in table.column_names:
        if name == target:
            continue
        column = table.column(name)
        if as_text is not None and name in integers and _zero_padded(as_text.column(name)):
            column = as_text.column(name)
        columns[name] = infer_kind(name, column)
    return infer_task(table.column(target)), columns


def _sample(path: Path, as_text: list[str] | None = None) -> pa.Table:
    with open(path, "rb") as handle:
        head = handle.read(4096)
    fmt, compressed = detect_format(path, head)
    if fmt == "csv":
        try:
            source = (
                pa.CompressedInputStream(pa.OSFile(str(path)), "gzip")
                if compressed
                else pa.OSFile(str(path))
            )
            with source:
                reader = pacsv.open_csv(
                    source,
                    convert_options=pacsv.ConvertOptions(
                        null_values=NULL_VALUES,
                        strings_can_be_null=True,
                        column_types=dict.fromkeys(as_text or [], pa.string()),
                    ),
                )
                batches = []
                rows = 0
                for batch in reader:
                    batches.append(batch)
                    rows += batch.num_rows
                    if rows >= SAMPLE_ROWS:
                        break
                return pa.Table.from_batches(batches, schema=reader.schema)
        except (pa.ArrowInvalid, OSError) as exc:
            raise ConfigError(f"cannot read {path} as csv: {exc}") from None
    from lockgate.pipelines.data.rejection import FileRejected

    try:
        table, _ = read_raw_file(path, {}, 1.0)  # no wanted columns: every column
    except FileRejected as rejected:
        raise ConfigError(f"cannot read {path}: {rejected.rejection.message}") from None
    return table


def infer_kind(name: str, column: pa.ChunkedArray) -> str:
    """The most likely kind of one column."""
    kind = column.type
    present = column.drop_null()
    distinct = len(pc.unique(present)) if len(present) else 0
    unique_share = distinct / len(present) if len(present) else 0.0
    if pa.types.is_timestamp(kind) or pa.types.is_date(kind):
        return "datetime"
    if pa.types.is_boolean(kind):
        return "categorical"
    if pa.types.is_integer(kind):
        return "id" if ID_NAME.search(name) and unique_share > 0.9 else "numeric"
    if _zero_padded(present):
        return "id" if unique_share > 0.9 else "categorical"
    if pa.types.is_floating(kind) or pa.types.is_decimal(kind):
        return "numeric"
    if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
        return "categorical"
    if len(present) and coerce(present, "datetime", name, None).null_count <= 0.05 * len(present):
        return "datetime"
    lengths = pc.utf8_length(present)
    mean_length = pc.mean(lengths).as_py() or 0.0
    spaces = pc.mean(pc.count_substring(present, " ")).as_py() or 0.0
    if ID_NAME.search(name) and unique_share > 0.9:
        return "id"
    if unique_share > 0.9 and spaces < 0.5 and mean_length < 40:
        return "id"
    if spaces >= 2 or mean_length > 30:
        return "text"
    return "categorical"


def _zero_padded(values: pa.ChunkedArray) -> bool:
    """Codes like "007": digits that a number type would strip of their leading zeros."""
    present = values.drop_null()
    if not pa.types.is_string(values.type) or not len(present):
        return False
    digits = pc.match_substring_regex(present, r"^\d+$")
    padded = pc.match_substring_regex(present, r"^0\d")
    return bool(pc.all(digits).as_py()) and bool(pc.any(padded).as_py())


def infer_task(target: pa.ChunkedArray) -> str:
    """``classification`` for labels and small integer sets, else ``regression``."""
    present = target.drop_null()
    if pa.types.is_floating(target.type):
        whole = pc.all(pc.equal(present, pc.floor(present))).as_py()
        if not whole:
            return "regression"
    if pa.types.is_integer(target.type) or pa.types.is_floating(target.type):
        return "classification" if len(pc.unique(present)) <= 20 else "regression"
    return "classification"
