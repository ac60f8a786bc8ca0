"""Ground truth for model-quality monitoring: labels uploaded later, joined to predictions.

A label file (CSV or JSON lines, optionally gzipped) has an ``inference_id`` column (the id the
endpoint returned in ``X-Inference-Id``), the target column, and optionally id columns (e.g.
``customer_id``) saying which row of a multi-row request a label is for. Labels are stored as
SageMaker Model Monitor ground-truth records, one JSON line each::

    {"groundTruthData": {"data": "1", "encoding": "CSV"},
     "eventMetadata": {"eventId": "<inference id>"}, "eventVersion": "0",
     "lockgateIds": {"customer_id": "42"}}

(``lockgateIds`` only when id columns were given; Model Monitor ignores it) in
``monitoring/ground-truth/<endpoint>/YYYY/MM/DD/HH/<MM-SS-mmm>-<uuid>.jsonl``, the hour of the
upload in UTC, so the same files serve lockgate and a SageMaker model-quality job.

Labels are never fatal to a monitoring run: one for a prediction that was not captured, or that
cannot be told apart from the other rows of its request, is counted and shown, not raised.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import re
import uuid
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Generic, NamedTuple, Protocol, TypeVar

from lockgate.errors import LockgateError
from lockgate.ports.store import Store

GROUND_TRUTH_PREFIX = "monitoring/ground-truth/"
INFERENCE_ID = "inference_id"
"""The column (CSV) or key (JSON lines) of a label file that holds the inference id."""
MAX_EXAMPLES = 5

_HOUR_FILE = re.compile(r"\d{4}/\d{2}/\d{2}/\d{2}/[^/]+\.jsonl")
_CSV_SPECIAL = re.compile(r'[,"\r\n]')


class LabelError(LockgateError):
    """A label file, or a ground-truth record in the store, cannot be read."""


@dataclass(frozen=True)
class Label:
    """The true value of one prediction."""

    inference_id: str
    label: str
    """The true value, as text (CSV-decoded)."""
    ids: dict[str, str] = field(default_factory=dict, hash=False)
    """Values of id columns picking one row of a multi-row request; empty if none given."""

    @property
    def identity(self) -> tuple[str, tuple[tuple[str, str], ...]]:
        """What a later label for the same prediction shares with this one."""
        return self.inference_id, tuple(sorted(self.ids.items()))


class PredictionRow(Protocol):
    """What a captured prediction must tell to be joined: its request and its id values."""

    @property
    def inference_id(self) -> str:
        """The id the endpoint returned for the request."""

    @property
    def ids(self) -> Mapping[str, str]:
        """The row's values of the id columns (e.g. ``{"customer_id": "42"}``)."""


class Prediction(NamedTuple):
    """A ready-made :class:`PredictionRow`: one row of a captured request."""

    inference_id: str
    row_index: int
    ids: Mapping[str, str]
    prediction: object


P = TypeVar("P", bound=PredictionRow)


@dataclass
class Joined(Generic[P]):
    """Labels matched to predictions (the caller's own prediction objects), and the rest."""

    matched: list[tuple[Label, P]] = field(default_factory=list)
    unknown: int = 0
    """Labels for an inference id (or ids) no captured prediction has."""
    ambiguous: int = 0
    """Labels that fit several rows of one request."""
    examples: list[str] = field(default_factory=list)
    """Up to MAX_EXAMPLES sentences on unmatched labels, for the report."""

    def describe(self) -> str:
        """One line, e.g. "120 labels matched; 3 unknown; 1 ambiguous (e.g. ...)"."""
        text = f"{len(self.matched)} label{'' if len(self.matched) == 1 else 's'} matched"
        if self.unknown:
            text += f"; {self.unknown} for predictions not captured"
        if self.ambiguous:
            text += f"; {self.ambiguous} ambiguous"
        return text + (f" (e.g. {self.examples[0]})" if self.examples else "")

    def _unmatched(self, kind: str, example: str) -> None:
        if kind == "unknown":
            self.unknown += 1
        else:
            self.ambiguous += 1
        if len(self.examples) < MAX_EXAMPLES:
            self.examples.append(example)


def ground_truth_prefix(endpoint: str) -> str:
    """Where an endpoint's ground truth is (``monitoring/ground-truth/churn/``)."""
    if not endpoint or "/" in endpoint or endpoint in (".", ".."):
        raise LabelError(f"'{endpoint}' is not an endpoint name; use the name without slashes")
    return f"{GROUND_TRUTH_PREFIX}{endpoint}/"


# -- reading a label file --------------------------------------------------------------------


def read_label_file(path: Path, target: str, id_columns: Sequence[str] = ()) -> list[Label]:
    """The labels in a CSV or JSON-lines file (``.gz`` too); a later line wins over an earlier one.

    Raises:
        LabelError: the file is empty, lacks the inference_id, target or an id column, or a
            line is malformed; the message names the file and the line.
    """
    path = Path(path)
    wanted = [INFERENCE_ID, target, *id_columns]
    if len(set(wanted)) < len(wanted):
        raise LabelError(
            f"the target '{target}' and id columns {list(id_columns)} must differ from each "
            f"other and from {INFERENCE_ID}"
        )
    suffixes = [suffix.lower() for suffix in path.suffixes]
    kind = (suffixes[:-1] if suffixes[-1:] == [".gz"] else suffixes)[-1:]
    if kind not in ([".csv"], [".jsonl"], [".ndjson"]):
        raise LabelError(f"{path}: label files are .csv or .jsonl (optionally .gz)")
    try:
        with _open_text(path) as text:
            if kind == [".csv"]:
                rows = list(_csv_rows(path, text, wanted))
            else:
                rows = list(_json_rows(path, text))
    except FileNotFoundError:
        raise LabelError(f"{path} does not exist") from None
    except (UnicodeDecodeError, gzip.BadGzipFile, EOFError) as exc:
        raise LabelError(f"{path} is not UTF-8 text or is a damaged gzip file: {exc}") from None
    if not rows:
        raise LabelError(
            f"{path} has no labels; write one per prediction, with columns {', '.join(wanted)}"
        )
    labels = [_label(f"{path}, line {line}", row, target, id_columns) for line, row in rows]
    return _latest(labels)


def _open_text(path: Path) -> io.TextIOWrapper:
    raw = gzip.open(path) if path.suffix.lower() == ".gz" else open(path, "rb")
    return io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")


def _csv_rows(path: Path, text: io.TextIOWrapper, wanted: list[str]) -> Iterator[tuple[int, Any]]:
    reader = csv.reader(text)
    try:
        header = next(reader, None)
        if header is None:
            raise LabelError(
                f"{path} is empty; write a header line {','.join(wanted)} and a row per label"
            )
        header = [name.strip() for name in header]
        missing = [name for name in wanted if name not in header]
        if missing:
            raise LabelError(
                f"{path}: no column {', '.join(repr(m) for m in missing)} in the header "
                f"({', '.join(header)}); label files need {', '.join(wanted)}"
            )
        for row in reader:
            if not any(cell.strip() for cell in row):
                continue
            if len(row) != len(header):
                raise LabelError(
                    f"{path}, line {reader.line_num}: {len(row)} fields where the header has "
                    f"{len(header)}; quote values that contain commas"
                )
            yield reader.line_num, dict(zip(header, row, strict=True))
    except csv.Error as exc:
        raise LabelError(f"{path}, line {reader.line_num}: not CSV ({exc})") from None


def _json_rows(path: Path, text: io.TextIOWrapper) -> Iterator[tuple[int, Any]]:
    for line, content in enumerate(text, start=1):
        if not content.strip():
            continue
        try:
            row = json.loads(content)
        except json.JSONDecodeError as exc:
            raise LabelError(f"{path}, line {line}: not JSON ({exc.msg})") from None
        if not isinstance(row, dict):
            raise LabelError(f"{path}, line {line}: a JSON object is expected, one per line")
        yield line, row


def _label(where: str, row: Mapping[str, Any], target: str, id_columns: Sequence[str]) -> Label:
    def value(name: str) -> str:
        if name not in row:
            raise LabelError(f"{where}: no '{name}' key; every line needs {INFERENCE_ID}, {target}")
        text = _text(row[name])
        if not text:
            raise LabelError(f"{where}: '{name}' is empty; leave out rows without a label yet")
        return text

    return Label(value(INFERENCE_ID), value(target), {name: value(name) for name in id_columns})


def _text(value: object) -> str:
    """A cell as text: strings stripped, JSON numbers and booleans as JSON writes them."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value.strip()
    return json.dumps(value)


def _latest(labels: Iterable[Label]) -> list[Label]:
    """One label per prediction: a later label for the same one replaces an earlier."""
    latest: dict[tuple[str, tuple[tuple[str, str], ...]], Label] = {}
    for label in labels:
        latest[label.identity] = label
    return list(latest.values())


# -- the store -------------------------------------------------------------------------------


def put_labels(store: Store, endpoint: str, labels: Sequence[Label], now: datetime) -> str:
    """Write ``labels`` as one ground-truth file under the hour of ``now`` (UTC); its key.

    Raises:
        LabelError: there are no labels, or ``endpoint`` is not a valid name.
        StoreError: the store refused the write.
    """
    prefix = ground_truth_prefix(endpoint)
    if not labels:
        raise LabelError(f"no labels to store for endpoint '{endpoint}'")
    moment = _utc(now)
    key = (
        f"{prefix}{moment:%Y/%m/%d/%H}/"
        f"{moment:%M-%S}-{moment.microsecond // 1000:03d}-{uuid.uuid4()}.jsonl"
    )
    store.put(key, b"".join(json.dumps(_record(label)).encode() + b"\n" for label in labels))
    return key


def read_labels(store: Store, endpoint: str, since: datetime | None = None) -> list[Label]:
    """The endpoint's labels in files of the hour of ``since`` (UTC) or later; all if None.

    Files are read in upload order, so a later label for the same prediction (inference id
    and ids) replaces an earlier one.

    Raises:
        LabelError: a stored record is not a ground-truth record (the message names the key).
    """
    prefix = ground_truth_prefix(endpoint)
    floor = "" if since is None else f"{_utc(since):%Y/%m/%d/%H}"
    labels: list[Label] = []
    for info in store.list(prefix):
        rest = info.key[len(prefix) :]
        if _HOUR_FILE.fullmatch(rest) and rest[:13] >= floor:
            labels.extend(_parse_records(store.get(info.key), info.key))
    return _latest(labels)


def _record(label: Label) -> dict[str, Any]:
    value = label.label
    if _CSV_SPECIAL.search(value):
        value = '"' + value.replace('"', '""') + '"'
    record: dict[str, Any] = {
        "groundTruthData": {"data": value, "encoding": "CSV"},
        "eventMetadata": {"eventId": label.inference_id},
        "eventVersion": "0",
    }
    if label.ids:
        record["lockgateIds"] = dict(label.ids)
    return record


def _parse_records(data: bytes, key: str) -> Iterator[Label]:
    for line, content in enumerate(data.decode("utf-8", "replace").splitlines(), start=1):
        if not content.strip():
            continue
        try:
            record = json.loads(content)
            truth = record["groundTruthData"]
            value = str(truth["data"])
            if truth.get("encoding", "CSV") == "CSV":
                cells = next(csv.reader([value]), [""])
                value = cells[0] if len(cells) == 1 else value
            ids = record.get("lockgateIds") or {}
            yield Label(
                str(record["eventMetadata"]["eventId"]),
                value,
                {str(name): str(cell) for name, cell in ids.items()},
            )
        except (ValueError, KeyError, TypeError, AttributeError, csv.Error) as exc:
            raise LabelError(
                f"{key}, line {line}: not a ground-truth record ({type(exc).__name__}: {exc}); "
                "fix or delete the file"
            ) from None


# -- joining ---------------------------------------------------------------------------------


def join_labels(labels: Iterable[Label], predictions: Iterable[P]) -> Joined[P]:
    """Match each label to the prediction it is for.

    A label matches by inference id and, when it has ids, by those ids among the request's
    rows (numbers compare by value: "42" is 42.0). A label without ids fits only a one-row
    request. Labels that match nothing or more than one row are counted, with examples.
    """
    rows_of: dict[str, list[P]] = defaultdict(list)
    for prediction in predictions:
        rows_of[prediction.inference_id].append(prediction)
    joined: Joined[P] = Joined()
    for label in labels:
        name = f"inference id '{label.inference_id}'"
        rows = rows_of.get(label.inference_id, [])
        if not rows:
            joined._unmatched("unknown", f"{name} is not in the captured traffic")
            continue
        if label.ids:
            which = ", ".join(f"{column}={value}" for column, value in label.ids.items())
            rows = [row for row in rows if _same_ids(row.ids, label.ids)]
            if not rows:
                joined._unmatched("unknown", f"{name} has no row with {which}")
            elif len(rows) > 1:
                joined._unmatched(
                    "ambiguous", f"{name} has {len(rows)} rows with {which}; add id columns"
                )
            else:
                joined.matched.append((label, rows[0]))
        elif len(rows) > 1:
            joined._unmatched(
                "ambiguous",
                f"{name} is a request of {len(rows)} rows; add an id column (e.g. customer_id) "
                "to say which row a label is for",
            )
        else:
            joined.matched.append((label, rows[0]))
    return joined


def _same_ids(row: Mapping[str, object], wanted: Mapping[str, str]) -> bool:
    return all(_same(row.get(column), value) for column, value in wanted.items())


def _same(cell: object, value: str) -> bool:
    text = _text(cell)
    if text == value:
        return True
    try:
        return float(text) == float(value)
    except ValueError:
        return False


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
