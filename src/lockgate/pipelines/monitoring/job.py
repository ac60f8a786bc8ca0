"""One monitoring run of an environment's endpoint: read, judge, write, tell.

1. The environment's current release says which package serves and which data version it was
   trained on; that version's baseline (statistics and constraints, computed once when the
   data was prepared) is the reference.
2. The window's captured requests are parsed again into rows and predictions.
3. Data quality (missing/extra columns, types, completeness, unseen categories), data drift
   per feature and for the dataset, and model quality -- on labels joined by inference id,
   or, without labels, the drift of the predictions against the training target.
4. ``monitoring/reports/<endpoint>/<run>/``: ``constraint_violations.json`` (Model Monitor's
   shape), ``report.json`` (every statistic) and ``report.html``; a run record in the ledger.
5. On a violation: the alert (log line, webhook, SNS) and, if asked, a retrain request.
   Monitoring never promotes anything.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa

from lockgate.config import MonitorConfig
from lockgate.errors import LockgateError, ObjectNotFound
from lockgate.pipelines.data.versions import read_manifest, read_verified
from lockgate.pipelines.deployment.copying import BASELINE_FILES, baseline_prefix, local_copy
from lockgate.pipelines.deployment.releases import Release, read_history
from lockgate.pipelines.ledger import Ledger, json_bytes
from lockgate.pipelines.monitoring.alerts import Alert, Notifier
from lockgate.pipelines.monitoring.capture import read_capture, window_rows
from lockgate.pipelines.monitoring.drift import data_drift
from lockgate.pipelines.monitoring.model_quality import model_quality, prediction_drift
from lockgate.pipelines.monitoring.quality import coerce_window, data_quality
from lockgate.pipelines.monitoring.report_html import write_monitoring_report
from lockgate.pipelines.runs import RUNS, Run, Trigger, recorded_run
from lockgate.pipelines.training.package import load_package
from lockgate.ports.store import Store

MONITORING = "monitoring"
REQUESTS = "requests"
TRAINING = "training"
Verdict = Literal["ok", "drift", "violations", "no_data"]
Say = Callable[[str], None]


@dataclass(frozen=True)
class MonitorResult:
    """What a run found and where it wrote it."""

    run: str
    verdict: Verdict
    rows: int
    drifted: list[str]
    violations: int
    prefix: str
    """``monitoring/reports/<endpoint>/<run>/`` in the environment's store."""
    html: Path | None
    """A local copy of report.html, when a work folder was given."""
    messages: list[str] = field(default_factory=list)
    alerts: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        """0 no violation, 3 drift or violations (what `lockgate monitor run` exits with)."""
        return 3 if self.verdict in ("drift", "violations") else 0


def reports_prefix(endpoint: str) -> str:
    return f"monitoring/reports/{endpoint}/"


def run_monitoring(
    store: Store,
    env: str,
    endpoint: str,
    config: MonitorConfig,
    *,
    window: timedelta,
    work_dir: Path,
    now: datetime | None = None,
    trigger: Trigger | None = None,
    notifiers: Sequence[Notifier] = (),
    retrain: Callable[[dict[str, Any]], str] | None = None,
    say: Say = lambda _message: None,
) -> MonitorResult:
    """Monitor ``endpoint`` of ``env`` over the ``window`` before ``now``.

    Args:
        store: the environment's store (capture, ground truth, baseline, ledger, reports).
        work_dir: a local folder for the package copy and report.html.
        notifiers: told of a violation (webhook, SNS); their failures are reported, not raised.
        retrain: called with a request on drift when ``config.retrain_on_drift``; returns
            what it did, for the record.
        trigger: what started it (default: a user's command).

    The run is recorded in ``store``'s ledger (``ledger/runs/monitoring/``) under the run id
    its reports are filed under; failed if it raises.

    Raises:
        LockgateError: nothing is released in ``env``, or its baseline is missing.
    """
    now = (now or datetime.now(UTC)).astimezone(UTC)
    start = now - window
    run = now.strftime("%Y-%m-%dT%H-%M-%SZ") + "-" + secrets.token_hex(3)
    inputs = {
        "endpoint": endpoint,
        "window": {"start": start.isoformat(timespec="seconds"), "end": now.isoformat()},
    }
    with recorded_run(
        store, MONITORING, trigger or Trigger.command(), inputs, env=env, run_id=run
    ) as record:
        record.extra.update(endpoint=endpoint, run=run)
        return _monitor(
            store, env, endpoint, config, start, now, run, work_dir, notifiers, retrain, say, record
        )


def _monitor(
    store: Store,
    env: str,
    endpoint: str,
    config: MonitorConfig,
    start: datetime,
    now: datetime,
    run: str,
    work_dir: Path,
    notifiers: Sequence[Notifier],
    retrain: Callable[[dict[str, Any]], str] | None,
    say: Say,
    record: Run,
) -> MonitorResult:
    release = read_history(Ledger(store), env).current()
    if release is None:
        record.hint = f"promote a model to {env} (lockgate promote MODEL VERSION --to {env}) first"
        raise LockgateError(
            f"nothing is released to {env}, so there is nothing to monitor; "
            f"promote a model first: lockgate promote MODEL VERSION --to {env}"
        )
    record.inputs["release"] = _release_summary(release)
    dataset = str(release.record.get("dataset"))
    statistics, constraints = _baseline(store, dataset, release)
    package = load_package(local_copy(store, release.package_prefix, work_dir))
    kinds: dict[str, str] = dict(package.transformer.columns)
    target = str(package.schema.get("target"))
    columns = list(kinds)
    id_columns = [name for name, kind in kinds.items() if kind == "id"]
    say(f"reading {endpoint}'s capture from {start:%Y-%m-%d %H:%M} to {now:%Y-%m-%d %H:%M} UTC")
    captured = read_capture(store, endpoint, start, now)
    window_data = window_rows(captured, columns, id_columns, package.classes)
    say(f"{window_data.requests} request(s), {window_data.rows} row(s)")
    messages = []
    if window_data.unreadable:
        messages.append(f"{window_data.unreadable} captured request(s) could not be read again")
    report: dict[str, Any] = {
        "run": run,
        "time": now.isoformat(timespec="seconds"),
        "endpoint": endpoint,
        "env": env,
        "window": record.inputs["window"],
        "release": record.inputs["release"],
        "rows": window_data.rows,
        "requests": window_data.requests,
        "data_quality": {"violations": []},
        "data_drift": None,
        "model_quality": None,
        "prediction_drift": None,
    }
    violations: list[dict[str, str]] = []
    verdict: Verdict = "ok"
    drifted: list[str] = []
    if window_data.rows < config.min_rows:
        messages.append(
            f"{window_data.rows} row(s) captured in the window, fewer than monitor.min_rows "
            f"({config.min_rows}): no verdict"
        )
        verdict = "no_data"
    else:
        raw = pa.table({name: _column(values) for name, values in window_data.columns.items()})
        canonical, type_errors = coerce_window(raw, kinds)
        quality = data_quality(
            sorted(window_data.sent),
            canonical,
            type_errors,
            kinds,
            statistics,
            constraints,
            config,
        )
        violations += [item.as_dict() for item in quality]
        report["data_quality"] = {"violations": [item.as_dict() for item in quality]}
        importance = _importance(package, kinds) if config.drift.weight_by_importance else None
        if config.drift.weight_by_importance and importance is None:
            messages.append(
                f"the model ({type(package.model).__name__}) has no feature importances: "
                "the drifted share is not weighted"
            )
        drift = data_drift(statistics, canonical, kinds, config.drift, importance)
        report["data_drift"] = drift.as_dict()
        drifted = [item.feature for item in drift.features if item.drifted]
        for item in drift.features:
            if item.drifted:
                violations.append(
                    {
                        "feature_name": item.feature,
                        "constraint_check_type": "baseline_drift_check",
                        "description": (
                            f"{item.test} p={item.p_adjusted:.3g} (BH-adjusted), {item.effect} "
                            f"{item.effect_size:.3f} >= {item.effect_threshold:g}"
                        ),
                    }
                )
        quality_report, degraded = model_quality(
            store, endpoint, start, window_data, package, release, config
        )
        report["model_quality"] = quality_report
        if quality_report is None:
            report["prediction_drift"] = prediction_drift(
                statistics, target, window_data, package.task, config
            )
        for metric in degraded:
            violations.append(
                {
                    "feature_name": metric,
                    "constraint_check_type": "model_quality_check",
                    "description": (
                        f"{metric} {quality_report['metrics'][metric]:.4f} on labelled traffic vs "  # type: ignore[index]
                        f"{release.record['metrics'][metric]:.4f} at release "
                        f"(tolerance {config.quality_tolerance:g})"
                    ),
                }
            )
        if drift.drifted:
            verdict = "drift"
        elif violations:
            verdict = "violations"
    report["verdict"] = verdict
    report["messages"] = messages
    ledger = Ledger(store)
    report["history"] = _history(ledger, env, report)
    prefix = reports_prefix(endpoint) + run + "/"
    store.put(prefix + "constraint_violations.json", json_bytes({"violations": violations}))
    store.put(prefix + "report.json", json_bytes(report))
    html = write_monitoring_report(report, Path(work_dir) / "reports" / run / "report.html")
    store.put_file(prefix + "report.html", html)
    alerts = (
        _tell(report, violations, drifted, prefix, notifiers, say)
        if verdict
        in (
            "drift",
            "violations",
        )
        else []
    )
    if verdict == "drift" and config.retrain_on_drift and retrain is not None:
        alerts.append(retrain({"reason": "drift", "env": env, "run": run, "dataset": dataset}))
    record.extra.update(
        verdict=verdict,
        rows=window_data.rows,
        share=(report["data_drift"] or {}).get("share"),
        drifted=drifted,
        violations=len(violations),
        metrics=(report["model_quality"] or {}).get("metrics"),
    )
    record.outputs = {"report": prefix}
    return MonitorResult(
        run, verdict, window_data.rows, drifted, len(violations), prefix, html, messages, alerts
    )


def past_runs(store: Store) -> list[dict[str, Any]]:
    """The monitoring runs that finished successfully in ``store``'s ledger (their end
    records), oldest first: what a verdict, a report and the schedule count."""
    return _succeeded(Ledger(store))


def _succeeded(ledger: Ledger) -> list[dict[str, Any]]:
    return [
        entry.record
        for entry in ledger.entries(RUNS, MONITORING)
        if entry.record.get("state") == "succeeded" and entry.record.get("ended")
    ]


def _baseline(
    store: Store, dataset: str, release: Release
) -> tuple[dict[str, Any], dict[str, Any]]:
    version = str(release.record.get("data_version"))
    documents = []
    for name in BASELINE_FILES:
        try:
            raw = store.get(baseline_prefix(dataset, version) + name.split("/", 1)[1])
        except ObjectNotFound:
            try:
                raw = read_verified(store, read_manifest(store, dataset, version), name)
            except ObjectNotFound:
                raise LockgateError(
                    f"the baseline of {dataset} {version} (what release #{release.seq} was "
                    f"trained on) is not in {store.uri}; promote the release again to copy it"
                ) from None
        documents.append(json.loads(raw))
    return documents[0], documents[1]


def _importance(package: Any, kinds: Mapping[str, str]) -> dict[str, float] | None:
    """Each column's share of the model's feature importance (tree importances, or the
    absolute coefficients of a linear model), summed over the features made from it."""
    model = package.model
    if hasattr(model, "feature_importances_"):
        weights = np.abs(np.asarray(model.feature_importances_, dtype=np.float64))
    elif hasattr(model, "coef_"):
        coef = np.abs(np.asarray(model.coef_, dtype=np.float64))
        weights = coef.reshape(-1, coef.shape[-1]).sum(axis=0)
    else:
        return None
    names = [str(name) for name in package.transformer.get_feature_names_out()]
    if len(names) != len(weights):
        return None
    totals: dict[str, float] = {}
    for name, weight in zip(names, weights, strict=True):
        column = next(
            (
                c
                for c in kinds
                if name == c or any(name.startswith(c + sep) for sep in ("__", "=", "~"))
            ),
            None,
        )
        if column is not None:
            totals[column] = totals.get(column, 0.0) + float(weight)
    total = sum(totals.values())
    return {column: value / total for column, value in totals.items()} if total > 0 else None


def _release_summary(release: Release) -> dict[str, Any]:
    return {
        "seq": release.seq,
        "model": release.model,
        "version": release.version,
        "data_version": release.record.get("data_version"),
        "package_sha256": release.package_sha256,
    }


def _column(values: list[Any]) -> pa.Array:
    """Values as sent (strings, numbers, None) in one Arrow column; mixed ones as text."""
    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
        return pa.array([None if value is None else str(value) for value in values], pa.string())


def _history(ledger: Ledger, env: str, report: Mapping[str, Any]) -> list[dict[str, Any]]:
    past = [
        {
            "run": record.get("run"),
            "time": record.get("ended"),
            "verdict": record.get("verdict"),
            "rows": record.get("rows"),
            "share": record.get("share"),
            "metrics": record.get("metrics"),
        }
        for record in _succeeded(ledger)
        if record.get("env") == env and record.get("endpoint") == report["endpoint"]
    ]
    past.append(
        {
            "run": report["run"],
            "time": report["time"],
            "verdict": report["verdict"],
            "rows": report["rows"],
            "share": (report["data_drift"] or {}).get("share"),
            "metrics": (report["model_quality"] or {}).get("metrics"),
        }
    )
    return past


def _tell(
    report: Mapping[str, Any],
    violations: list[dict[str, str]],
    drifted: list[str],
    prefix: str,
    notifiers: Sequence[Notifier],
    say: Say,
) -> list[str]:
    alert = Alert(
        endpoint=str(report["endpoint"]),
        env=str(report["env"]),
        run=str(report["run"]),
        verdict=str(report["verdict"]),
        drifted=list(drifted),
        violations=len(violations),
        report=prefix + "report.html",
        time=datetime.fromisoformat(str(report["time"])),
    )
    say(alert.one_line())
    told = []
    for notifier in notifiers:
        told.append(notifier.notify(alert))
    return told
