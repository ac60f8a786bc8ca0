"""The data pipeline: raw files of a dataset -> one committed, immutable dataset version.

Order of writes is what makes it crash-safe: quarantine copies, then every file of the
version, then ``manifest.json`` last with put-if-absent. A crash before the manifest leaves
no version (readers look for the manifest only) and a rerun rewrites the same bytes and
commits; two concurrent runs write identical bytes and exactly one commits the manifest.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import pickle
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

import lockgate
from lockgate.config import DatasetConfig
from lockgate.pipelines.data.baseline import build_baseline
from lockgate.pipelines.data.columns import Kind, coerce, read_type
from lockgate.pipelines.data.reading import read_raw_file
from lockgate.pipelines.data.rejection import FileRejected, Rejection
from lockgate.pipelines.data.split import SPLITS, split_indices
from lockgate.pipelines.data.tensors import SafetensorsWriter
from lockgate.pipelines.data.transformer import TabularTransformer
from lockgate.pipelines.data.versions import (
    MANIFEST,
    TRANSFORMER,
    FileDigest,
    Manifest,
    QuarantinedFile,
    SourceFile,
    version_id,
    version_prefix,
)
from lockgate.pipelines.ledger import json_bytes
from lockgate.pipelines.runs import Trigger, recorded_run
from lockgate.ports.store import LocalPaths, ObjectInfo, Staging, Store

log = logging.getLogger("lockgate.data")

Report = Callable[[str], None]

WRITE_CHUNK_ROWS = 1 << 16
"""Rows transformed and written at a time: bounds memory to the table plus one chunk."""

RECORDED_KEYS = 20
"""A run record lists the raw keys it read when there are at most this many."""


@dataclass
class PrepResult:
    """What one run of the data pipeline did for one dataset."""

    dataset: str
    status: str
    """``committed`` (a new version), ``exists`` (already committed; nothing done),
    ``no_raw_files``, or ``all_quarantined`` (no readable file: no version)."""
    version: str | None = None
    rows: dict[str, int] = field(default_factory=dict)
    quarantined: list[QuarantinedFile] = field(default_factory=list)
    seconds: float = 0.0
    message: str = ""


def raw_prefix(dataset: str) -> str:
    return f"raw/{dataset}/"


def raw_sources(store: Store, dataset: str) -> list[ObjectInfo]:
    """The raw objects of ``dataset`` (folder markers and hidden files left out)."""
    return [
        info
        for info in store.list(raw_prefix(dataset))
        if not info.key.endswith("/") and not info.key.rsplit("/", 1)[-1].startswith(".")
    ]


def prepare(
    store: Store,
    dataset: str,
    config: DatasetConfig,
    report: Report | None = None,
    *,
    trigger: Trigger | None = None,
) -> PrepResult:
    """Prepare the current raw files of ``dataset`` into a version, unless it exists.

    Idempotent: the version id depends only on the raw objects (keys, ETags) and ``config``.
    The run is recorded in ``store``'s ledger (``ledger/runs/data/``); one that makes no
    version (no raw file, every file quarantined) is recorded failed, saying what to do.

    Args:
        trigger: what started it (default: a user's command).
    """
    started = time.perf_counter()
    sources = raw_sources(store, dataset)
    inputs: dict[str, Any] = {"dataset": dataset, "raw_objects": len(sources)}
    if len(sources) <= RECORDED_KEYS:
        inputs["raw_keys"] = [source.key for source in sources]
    with recorded_run(store, "data", trigger or Trigger.command(), inputs) as run:
        result = _prepare(store, dataset, config, sources, report, started)
        run.outputs = {
            "status": result.status,
            "version": result.version,
            "rows": result.rows,
            "quarantined": len(result.quarantined),
            "quarantined_keys": [item.key for item in result.quarantined],
        }
        if result.status not in ("committed", "exists"):
            run.fail(result.message, _no_version_hint(result))
    return result


def _no_version_hint(result: PrepResult) -> str:
    """What to do when a run made no version."""
    prefix = raw_prefix(result.dataset)
    if not result.quarantined:
        return f"upload its files under {prefix}: lockgate put FILE --dataset {result.dataset}"
    shown = "; ".join(
        f"{item.location}error.json says why {item.key} was rejected"
        for item in result.quarantined[:3]
    )
    more = len(result.quarantined) - 3
    if more > 0:
        shown += f"; and {more} more under quarantine/{result.dataset}/"
    return f"{shown}. Fix the file(s) and upload them to {prefix} again"


def _prepare(
    store: Store,
    dataset: str,
    config: DatasetConfig,
    sources: list[ObjectInfo],
    report: Report | None,
    started: float,
) -> PrepResult:
    say = report or (lambda message: None)
    if not sources:
        return PrepResult(dataset, "no_raw_files", message=f"no files under {raw_prefix(dataset)}")
    version = version_id(dataset, [(s.key, s.etag) for s in sources], config)
    prefix = version_prefix(dataset, version)
    if store.exists(prefix + MANIFEST):
        return PrepResult(
            dataset,
            "exists",
            version,
            message=f"{version} is already committed for these {len(sources)} raw file(s)",
            seconds=time.perf_counter() - started,
        )
    log.info("preparing %s %s from %d raw file(s)", dataset, version, len(sources))
    with tempfile.TemporaryDirectory(prefix="lockgate-prep-") as scratch:
        tables, used, quarantined = _read_sources(
            store, dataset, config, sources, Path(scratch), say
        )
        if not tables:
            return PrepResult(
                dataset,
                "all_quarantined",
                version,
                quarantined=quarantined,
                message=f"all {len(sources)} raw file(s) were rejected; see quarantine/{dataset}/",
                seconds=time.perf_counter() - started,
            )
        manifest = _build_version(
            store, dataset, version, config, tables, used, quarantined, Path(scratch), say
        )
    if not store.put_if_absent(prefix + MANIFEST, json_bytes(manifest.model_dump(mode="json"))):
        return PrepResult(
            dataset,
            "exists",
            version,
            message=f"{version} was committed by a concurrent run",
            seconds=time.perf_counter() - started,
        )
    seconds = time.perf_counter() - started
    say(f"committed {dataset} {version}: {manifest.rows['total']} rows in {seconds:.1f}s")
    return PrepResult(
        dataset,
        "committed",
        version,
        rows=dict(manifest.rows),
        quarantined=quarantined,
        seconds=seconds,
        message=f"{manifest.rows['total']} rows, {manifest.n_features} features",
    )


def _read_sources(
    store: Store,
    dataset: str,
    config: DatasetConfig,
    sources: list[ObjectInfo],
    scratch: Path,
    say: Report,
) -> tuple[list[pa.Table], list[SourceFile], list[QuarantinedFile]]:
    # id columns are never features: not reading them saves memory and time.
    kinds: dict[str, Kind] = {name: kind for name, kind in config.columns.items() if kind != "id"}
    kinds[config.target] = "label" if config.task == "classification" else "numeric"
    wanted = {name: read_type(kind) for name, kind in kinds.items()}
    tolerance = config.prep.max_invalid_fraction
    tables: list[pa.Table] = []
    used: list[SourceFile] = []
    quarantined: list[QuarantinedFile] = []
    for number, source in enumerate(sources, start=1):
        say(f"reading {source.key} ({number}/{len(sources)}, {source.size / 1e6:.1f} MB)")
        with _local_copy(store, source, scratch) as path:
            try:
                table, malformed = read_raw_file(
                    path, wanted, tolerance, multiline="text" in kinds.values()
                )
                table = pa.table(
                    {
                        name: coerce(table.column(name), kind, name, tolerance)
                        for name, kind in kinds.items()
                    }
                )
                if table.column(config.target).null_count == table.num_rows:
                    raise FileRejected(
                        Rejection(
                            "no_target_values",
                            f"target column '{config.target}' has no values",
                            column=config.target,
                        )
                    )
            except FileRejected as rejected:
                quarantined.append(_quarantine(store, dataset, source, path, rejected.rejection))
                say(f"quarantined {source.key}: {rejected.rejection.message}")
                continue
        tables.append(table)
        used.append(
            SourceFile(
                key=source.key,
                etag=source.etag,
                size=source.size,
                rows=table.num_rows,
                malformed_rows=malformed,
            )
        )
    return tables, used, quarantined


@contextlib.contextmanager
def _local_copy(store: Store, source: ObjectInfo, scratch: Path) -> Iterator[Path]:
    """A local path with the object's bytes: in place for a folder store, else downloaded."""
    if isinstance(store, LocalPaths):
        yield store.local_path(source.key)
        return
    path = scratch / ("raw-" + hashlib.sha256(source.key.encode()).hexdigest()[:16])
    path = path.with_name(path.name + "-" + source.key.rsplit("/", 1)[-1])
    store.get_file(source.key, path)
    try:
        yield path
    finally:
        path.unlink(missing_ok=True)


def _quarantine(
    store: Store, dataset: str, source: ObjectInfo, path: Path, rejection: Rejection
) -> QuarantinedFile:
    """Copy the file untouched to ``quarantine/<dataset>/<id>/`` with ``error.json``."""
    ident = hashlib.sha256(f"{source.key}\n{source.etag}".encode()).hexdigest()[:16]
    location = f"quarantine/{dataset}/{ident}/"
    name = source.key.rsplit("/", 1)[-1]
    if not store.exists(location + name):
        store.put_file(location + name, path)
    error = {
        "dataset": dataset,
        "file": source.key,
        "etag": source.etag,
        "size": source.size,
        "quarantined_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "lockgate_version": lockgate.__version__,
        **rejection.to_json(),
    }
    store.put_if_absent(location + "error.json", json_bytes(error))
    log.warning("quarantined %s (%s): %s", source.key, rejection.rule, rejection.message)
    return QuarantinedFile(
        key=source.key,
        etag=source.etag,
        rule=rejection.rule,
        message=rejection.message,
        location=location,
    )


def _build_version(
    store: Store,
    dataset: str,
    version: str,
    config: DatasetConfig,
    tables: list[pa.Table],
    used: list[SourceFile],
    quarantined: list[QuarantinedFile],
    scratch: Path,
    say: Report,
) -> Manifest:
    prep = config.prep
    table = _contiguous(tables)
    labelled = pc.is_valid(table.column(config.target))
    null_targets = table.num_rows - (pc.sum(labelled).as_py() or 0)
    if null_targets:
        table = table.filter(labelled)
    transformer = TabularTransformer(
        columns=config.columns,
        target=config.target,
        task=config.task,
        rare_min_frequency=prep.rare_min_frequency,
        max_categories=prep.max_categories,
        text_max_features=prep.text_max_features,
        text_fit_rows=prep.text_fit_rows,
        seed=prep.seed,
    )
    y_all = transformer.fit_target(table.column(config.target))
    strata = y_all if config.task == "classification" else None
    splits = split_indices(
        table.num_rows, prep.validation_fraction, prep.test_fraction, prep.seed, strata
    )
    say(f"fitting the transformer on {len(splits['train'])} training rows")
    train = table.take(pa.array(splits["train"]))
    # Fitting and the baseline statistics are independent numpy/Arrow work that releases the
    # GIL: side by side they use both cores of a small machine.
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="prep") as pool:
        fitting = pool.submit(transformer.fit, train)
        baseline = pool.submit(
            build_baseline,
            train,
            dict(config.columns),
            config.target,
            config.task,
            prep.histogram_bins,
            prep.seed,
            prep.max_categories,
        )
        fitting.result()
        statistics, constraints = baseline.result()
    del train
    prefix = version_prefix(dataset, version)
    files: dict[str, FileDigest] = {}
    names = [str(name) for name in transformer.get_feature_names_out()]
    for split in SPLITS:
        say(f"writing {split}.safetensors ({len(splits[split])} rows x {len(names)} features)")
        files[f"{split}.safetensors"] = _write_split(
            store,
            prefix,
            split,
            splits[split],
            table,
            y_all,
            transformer,
            scratch,
            {"dataset": dataset, "version": version, "split": split},
        )
    schema = {
        "dataset": dataset,
        "task": config.task,
        "target": config.target,
        "columns": dict(config.columns),
        "arrow_types": {name: str(table.schema.field(name).type) for name in table.column_names},
        "feature_names": names,
        "classes": getattr(transformer, "classes_", None),
    }
    documents: dict[str, bytes] = {
        TRANSFORMER: pickle.dumps(transformer, protocol=5),
        "schema.json": json_bytes(schema),
        "baseline/statistics.json": json_bytes(statistics),
        "baseline/constraints.json": json_bytes(constraints),
    }
    for name, data in documents.items():
        store.put(prefix + name, data)
        files[name] = FileDigest(sha256=hashlib.sha256(data).hexdigest(), size=len(data))
    rows_per_split = {split: len(splits[split]) for split in SPLITS}
    rows_per_split["total"] = table.num_rows
    return Manifest(
        format=1,
        dataset=dataset,
        version=version,
        created_at=datetime.now(UTC).isoformat(timespec="milliseconds"),
        lockgate_version=lockgate.__version__,
        task=config.task,
        target=config.target,
        sources=used,
        quarantined=quarantined,
        rows=rows_per_split,
        dropped_rows={
            "null_target": null_targets,
            "malformed": sum(source.malformed_rows for source in used),
        },
        n_features=transformer.n_features_out_,
        classes=getattr(transformer, "classes_", None),
        files=files,
        prep=config.model_dump(mode="json"),
    )


def _contiguous(tables: list[pa.Table]) -> pa.Table:
    """All rows as one chunk per column, taking ``tables`` over (the list is emptied).

    Arrow's ``take`` over many chunks is several times slower, and every split is gathered
    with ``take``. Columns are combined one at a time and their chunked originals dropped at
    once, so the extra memory is one column, not a second copy of the table.
    """
    table = pa.concat_tables(tables) if len(tables) > 1 else tables[0]
    tables.clear()
    columns: dict[str, pa.Array] = {}
    for name in table.column_names:
        columns[name] = table.column(name).combine_chunks()
        table = table.drop_columns([name])
    return pa.table(columns)


def _write_split(
    store: Store,
    prefix: str,
    split: str,
    rows: np.ndarray,
    table: pa.Table,
    y_all: np.ndarray,
    transformer: TabularTransformer,
    scratch: Path,
    metadata: dict[str, str],
) -> FileDigest:
    """Stream one split's tensors to a file in row chunks, then publish it in the store."""
    width = transformer.n_features_out_
    folder = store.staging_dir() if isinstance(store, Staging) else scratch
    path = folder / f"{uuid.uuid4().hex}-{split}.safetensors"
    layout = {
        "X": (np.dtype(np.float32), (len(rows), width)),
        "y": (y_all.dtype, (len(rows),)),
    }
    try:
        with SafetensorsWriter(path, layout, metadata) as writer:
            for start in range(0, len(rows), WRITE_CHUNK_ROWS):
                picked = rows[start : start + WRITE_CHUNK_ROWS]
                x = np.zeros((len(picked), width), dtype=np.float32)  # fresh: the writer reads it
                transformer.transform_into(table.take(pa.array(picked)), x)
                writer.write("X", x)
            writer.write("y", y_all[rows])
            digest = writer.close()
        size = path.stat().st_size
        if isinstance(store, Staging):
            store.commit_staged(prefix + f"{split}.safetensors", path, digest)
        else:
            store.put_file(prefix + f"{split}.safetensors", path)
    finally:
        path.unlink(missing_ok=True)
    return FileDigest(sha256=digest, size=size)


def describe(result: PrepResult) -> dict[str, Any]:
    """A JSON-ready summary of a run (for logs and the Lambda's return value)."""
    return {
        "dataset": result.dataset,
        "status": result.status,
        "version": result.version,
        "rows": result.rows,
        "quarantined": [item.key for item in result.quarantined],
        "seconds": round(result.seconds, 3),
        "message": result.message,
    }
