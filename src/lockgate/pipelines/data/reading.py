"""Read one raw file (csv, parquet, jsonl; gzip-compressed or not) into an Arrow table.

Only the configured columns are read. What cannot be read becomes a :class:`FileRejected`
naming the rule broken, so the file can be quarantined while the others are prepared.
"""

from __future__ import annotations

import gzip
import itertools
import re
import threading
import zlib
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.json as pajson
import pyarrow.parquet as pq

from lockgate.pipelines.data.rejection import FileRejected, Rejection

NULL_VALUES = ["", "NA", "N/A", "n/a", "NaN", "nan", "null", "NULL", "None", "none", "#N/A"]
SNIFF_BYTES = 64 * 1024
PIECE_BYTES = 32 << 20
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
    path: Path,
    wanted: dict[str, pa.DataType | None],
    max_invalid_fraction: float,
    multiline: bool = True,
) -> tuple[pa.Table, int]:
    """Read ``path``, keeping the ``wanted`` columns (typed where a type is given).

    Args:
        multiline: whether quoted CSV values may hold line breaks (free text does); parsing is
            faster without.

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
    try:
        fmt, compressed = detect_format(path, head)
    except (OSError, EOFError, zlib.error) as exc:
        raise FileRejected(
            Rejection("unreadable", f"the file looks gzip-compressed but is corrupt: {exc}")
        ) from None
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
            table, malformed = _read_csv(path, wanted, compressed, max_invalid_fraction, multiline)
    except FileRejected:
        raise
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, OSError) as exc:
        raise FileRejected(_classify(exc, fmt)) from None
    _check_columns(wanted, table.column_names)
    if table.num_rows == 0:
        raise FileRejected(Rejection("no_rows", "the file has a header but no data rows"))
    return (table if not wanted else table.select(list(wanted))), malformed


def _check_columns(wanted: dict[str, pa.DataType | None], names: list[str]) -> None:
    """Reject the file if a wanted column is missing, showing the columns it does have."""
    missing = [name for name in wanted if name not in names]
    if missing:
        found = ", ".join(names[:12]) + (", ..." if len(names) > 12 else "") or "none"
        raise FileRejected(
            Rejection(
                "missing_column",
                f"column '{missing[0]}' is missing (missing: {', '.join(missing)}; "
                f"the file has: {found})",
                column=missing[0],
            )
        )


def _classify(exc: Exception, fmt: str) -> Rejection:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if "UTF8" in text or "utf8" in text or "UTF-8" in text:
        return Rejection(
            "encoding",
            f"the file is not valid UTF-8 ({text}); re-save it as UTF-8, "
            "e.g. `iconv -f latin1 -t utf-8`",
        )
    if "Empty CSV file" in text:
        return Rejection("no_rows", "the file has a header but no data rows")
    return Rejection("unreadable", f"cannot read it as {fmt}: {text}")


def _read_csv(
    path: Path,
    wanted: dict[str, pa.DataType | None],
    compressed: bool,
    tolerance: float,
    multiline: bool,
) -> tuple[pa.Table, int]:
    malformed: list[tuple[int | None, str]] = []
    lock = threading.Lock()

    def skip_malformed(row: Any) -> str:
        with lock:
            malformed.append((row.number, str(row.text)[:200]))
        return "skip"

    parse_options = pacsv.ParseOptions(
        invalid_row_handler=skip_malformed, newlines_in_values=multiline
    )
    # Read the header first so a missing column is reported by name, not as an Arrow error.
    with _open(path, compressed) as source:
        header = pacsv.open_csv(
            source,
            read_options=pacsv.ReadOptions(block_size=1 << 16),
            parse_options=pacsv.ParseOptions(invalid_row_handler=lambda _row: "skip"),
            convert_options=pacsv.ConvertOptions(column_types=dict.fromkeys(wanted, pa.string())),
        ).schema.names
    _check_columns(wanted, header)
    present = [name for name in wanted if name in header]
    types = {name: kind for name, kind in wanted.items() if kind is not None}
    if not multiline and not compressed:
        table = _read_in_pieces(path, header, present, types, parse_options)
        return _check_malformed(path, compressed, parse_options, table, malformed, tolerance)
    # Streaming keeps memory at the table plus one block. Types are inferred from the first
    # block, so a column that turns out to hold text further down fails the conversion: it is
    # then read as text, and the coercion step counts its unparseable values.
    for _attempt in range(len(present) + 1):
        malformed.clear()
        try:
            table = _stream_csv(path, compressed, present, types, parse_options)
            break
        except pa.ArrowInvalid as exc:
            column = _failed_column(exc, header)
            if column is None or types.get(column) == pa.string():
                raise
            types[column] = pa.string()
    else:  # pragma: no cover - every column was retried as text, which always converts
        raise FileRejected(Rejection("unreadable", "no column type could read the file"))
    return _check_malformed(path, compressed, parse_options, table, malformed, tolerance)


def _check_malformed(
    path: Path,
    compressed: bool,
    parse_options: pacsv.ParseOptions,
    table: pa.Table,
    malformed: list[tuple[int | None, str]],
    tolerance: float,
) -> tuple[pa.Table, int]:
    total = table.num_rows + len(malformed)
    if malformed and len(malformed) > tolerance * total:
        number, text = _first_malformed(path, compressed, parse_options.newlines_in_values)
        raise FileRejected(
            Rejection(
                "malformed_rows",
                f"{len(malformed)} of {total} rows have the wrong number of fields "
                f"(tolerance {tolerance:.1%}); first at line {number}: {text!r}",
                row=number - 1 if number is not None else None,
                value=text,
            )
        )
    return table, len(malformed)


def _first_malformed(path: Path, compressed: bool, multiline: bool) -> tuple[int | None, str]:
    """Line number and text of the first malformed row: a single-threaded rescan, since the
    threaded reader does not know line numbers (only run when a file is rejected)."""
    found: list[tuple[int | None, str]] = []

    def first(row: Any) -> str:
        if not found:
            found.append((row.number, str(row.text)[:200]))
        return "skip"

    with _open(path, compressed) as source:
        pacsv.read_csv(
            source,
            read_options=pacsv.ReadOptions(use_threads=False),
            parse_options=pacsv.ParseOptions(
                invalid_row_handler=first, newlines_in_values=multiline
            ),
            convert_options=pacsv.ConvertOptions(include_columns=[]),
        )
    return found[0] if found else (None, "")


def _read_in_pieces(
    path: Path,
    header: list[str],
    present: list[str],
    types: dict[str, pa.DataType],
    parse_options: pacsv.ParseOptions,
) -> pa.Table:
    """Read the file as consecutive pieces of whole lines, each with the threaded reader.

    Arrow's threaded ``read_csv`` is about three times faster than its streaming reader, but
    holds the whole input plus the parsed table at its peak. Pieces of PIECE_BYTES keep that
    peak to one piece while keeping its speed. Only for files without line breaks inside
    quoted values (no text columns), since a piece boundary must be a line boundary, and
    only uncompressed ones, since pieces are cut by seeking.
    Each piece infers its own types; pieces that disagree (a column of numbers that turns to
    text further down) are joined as text, and the coercion step then counts bad values.
    """
    convert_options = _convert_options(present, types)
    pieces: list[pa.Table] = []
    with pa.OSFile(str(path)) as source:
        for number, (start, end) in enumerate(_line_ranges(source, source.size())):
            pieces.append(
                pacsv.read_csv(
                    pa.BufferReader(source.read_at(end - start, start)),
                    read_options=pacsv.ReadOptions(
                        column_names=header, skip_rows=0 if number else 1, block_size=1 << 20
                    ),
                    parse_options=parse_options,
                    convert_options=convert_options,
                )
            )
    if not pieces:
        return pa.table({name: pa.array([], pa.string()) for name in present})
    return _concat_pieces(pieces)


def _convert_options(present: list[str], types: dict[str, pa.DataType]) -> pacsv.ConvertOptions:
    return pacsv.ConvertOptions(
        include_columns=present,
        column_types=types,
        null_values=NULL_VALUES,
        strings_can_be_null=True,
        quoted_strings_can_be_null=True,
    )


def _line_ranges(source: pa.NativeFile, size: int) -> list[tuple[int, int]]:
    """Byte ranges of about PIECE_BYTES that start and end on line boundaries."""
    cuts = [0]
    while cuts[-1] + PIECE_BYTES < size:
        probe = cuts[-1] + PIECE_BYTES
        window = bytes(source.read_at(min(1 << 20, size - probe), probe))
        newline = window.find(b"\n")
        if newline < 0:  # a line longer than the window: let this piece run to the end
            break
        cuts.append(probe + newline + 1)
    cuts.append(size)
    return [(a, b) for a, b in itertools.pairwise(cuts) if b > a]


def _concat_pieces(pieces: list[pa.Table]) -> pa.Table:
    try:
        return pa.concat_tables(pieces, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        pass
    # Pieces inferred different types for a column: join that column as text.
    names = pieces[0].column_names
    mixed = {n for n in names if len({str(p.schema.field(n).type) for p in pieces}) > 1}
    fixed = [
        pa.table({n: p.column(n).cast(pa.string()) if n in mixed else p.column(n) for n in names})
        for p in pieces
    ]
    return pa.concat_tables(fixed, promote_options="permissive")


def _stream_csv(
    path: Path,
    compressed: bool,
    present: list[str],
    types: dict[str, pa.DataType],
    parse_options: pacsv.ParseOptions,
) -> pa.Table:
    convert_options = _convert_options(present, types)
    with _open(path, compressed) as source:
        reader = pacsv.open_csv(
            source,
            read_options=pacsv.ReadOptions(block_size=8 << 20),
            parse_options=parse_options,
            convert_options=convert_options,
        )
        return reader.read_all()


def _failed_column(exc: Exception, header: list[str]) -> str | None:
    """The column named in an Arrow CSV conversion error ("In CSV column #3: ...")."""
    match = re.search(r"CSV column #(\d+)", str(exc))
    if match is None or "conversion error" not in str(exc):
        return None
    index = int(match.group(1))
    return header[index] if index < len(header) else None


def _open(path: Path, compressed: bool) -> Any:
    if compressed:
        return pa.CompressedInputStream(pa.OSFile(str(path)), "gzip")
    return pa.OSFile(str(path))


def _read_parquet(path: Path, wanted: dict[str, pa.DataType | None]) -> pa.Table:
    if not wanted:
        return pq.read_table(path)
    names = pq.read_schema(path).names
    _check_columns(wanted, names)
    return pq.read_table(path, columns=list(wanted))


def _read_jsonl(path: Path, compressed: bool) -> pa.Table:
    with _open(path, compressed) as source:
        table = pajson.read_json(source)
    # The JSON reader does not check string bytes; a full validation finds non-UTF-8 text.
    table.validate(full=True)
    return table
