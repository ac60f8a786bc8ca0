"""``lockgate demo``: the lifecycle on generated sample data, in a workspace kept afterwards.

Generate data -> upload to raw/ -> the runtime dispatches the S3-shaped event -> the data
pipeline commits a version (and quarantines a broken file) -> a parallel Optuna study trains
model families on it -> the best model is packaged and registered (pending approval) -> an HTML
report of the study -> approved for staging, promoted to dev and staging, both endpoints started
and sent rows -> staging's release history -> monitoring of unshifted, then shifted traffic
(drift) -> ``lockgate status`` -> a summary table. Every run is recorded as ``up`` would record
it, so every other command works on the workspace afterwards. The endpoints it started are
stopped on the way out, whatever happened.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from lockgate.cli.app import app
from lockgate.cli.output import console, stage, transfer_progress

if TYPE_CHECKING:
    from datetime import datetime

    from lockgate.cli.serving import RunningEndpoint
    from lockgate.config import Settings
    from lockgate.ports.store import Store

BROKEN_CSV = (
    "customer_id,signup_date,tenure_months,monthly_charges\n"
    "C-X1,2025-03-01,12,49.5\n"
    "C-X2,2025-04-11,3,70.1\n"
)
"""An export that lost most of its columns, the target among them: it goes to quarantine."""


DEMO_TRAINING = """
[train]                    # a short study for the demo; `lockgate train --trials 60` for more
trials = 12
workers = 2
timeout = "90s"
"""


@app.command()
def demo(
    workspace: Annotated[
        Path, typer.Option(help="Folder for the demo project (kept afterwards).")
    ] = Path("lockgate-demo"),
    rows: Annotated[int, typer.Option(min=100, help="Rows per generated month.")] = 20_000,
    fresh: Annotated[bool, typer.Option(help="Delete the workspace first.")] = False,
    trials: Annotated[int, typer.Option(min=1, help="Trials in the demo's study.")] = 12,
    workers: Annotated[int, typer.Option(min=1, help="Parallel training workers.")] = 2,
) -> None:
    """Run the lifecycle on generated churn data (no AWS needed)."""
    from lockgate.cli.app import configure_logs
    from lockgate.cli.commands import print_prep
    from lockgate.cli.project import render_config
    from lockgate.config import load_settings
    from lockgate.local.runtime import Runtime
    from lockgate.pipelines.data.versions import list_versions
    from lockgate.sample.churn import CHURN_COLUMNS, CHURN_TARGET, write_churn_csv
    from lockgate.wiring import open_store

    started = time.perf_counter()
    summary = Summary()
    if fresh and workspace.exists():
        shutil.rmtree(workspace)
    data = workspace / "data"
    data.mkdir(parents=True, exist_ok=True)
    config_path = workspace / "lockgate.toml"
    config_path.write_text(
        render_config("churn", CHURN_TARGET, "classification", dict(CHURN_COLUMNS)) + DEMO_TRAINING,
        encoding="utf-8",
    )
    summary.stage("sample data")
    console.rule("[bold]1. sample data")
    files = [
        write_churn_csv(data / "churn-2026-01.csv", rows, seed=7),
        write_churn_csv(data / "churn-2026-02.csv.gz", rows, seed=8, gzip=True),
        data / "churn-broken-export.csv",
    ]
    files[-1].write_text(BROKEN_CSV, encoding="utf-8")
    for path in files:
        console.print(f"generated {path} ({path.stat().st_size / 1e6:.1f} MB)")
    size = sum(path.stat().st_size for path in files)
    summary.done(f"{len(files)} churn exports, {size / 1e6:.1f} MB (one of them broken)")

    settings = load_settings(config_path)
    configure_logs(settings)  # the workspace's JSON logs, as every command in it writes them
    store = open_store(settings.store_uri)
    summary.stage("upload")
    console.rule("[bold]2. upload to raw/churn/")
    for path in files:
        with transfer_progress(f"put {path.name}", path.stat().st_size) as advance:
            info = store.put_file(f"raw/churn/{path.name}", path, progress=advance)
        console.print(f"put raw/churn/{path.name} (etag {info.etag[:12]})")
    summary.done(f"{len(files)} objects to raw/churn/ in {store.uri}")

    summary.stage("data pipeline")
    console.rule("[bold]3. event -> data pipeline")
    runtime = Runtime(store, settings.datasets, stage)
    dispatch = None
    for _ in range(3):  # the runtime dispatches an object once it is seen unchanged twice
        dispatch = runtime.poll()
        if dispatch is not None:
            break
    if dispatch is None or dispatch.result is None:
        raise typer.Exit(1)
    console.print(
        f"dispatched an S3 event with {len(dispatch.event['Records'])} record(s), "
        "as AWS would deliver it to the data-prep Lambda"
    )
    for result in dispatch.result.prepared:
        print_prep(result)
    latest = list_versions(store, "churn")[-1]
    quarantined = sum(len(result.quarantined) for result in dispatch.result.prepared)
    summary.done(
        f"version {latest.version}: {latest.rows['total']:,} rows x {latest.n_features} "
        f"features; {quarantined} file quarantined"
    )

    summary.stage("training")
    console.rule("[bold]4. training: Optuna study, best model, registry")
    from lockgate.cli.training import print_training, run_training
    from lockgate.pipelines.runs import Trigger

    trained = run_training(
        settings, store, trials=trials, workers=workers, trigger=Trigger("demo", "lockgate demo")
    )
    print_training(trained)
    finished = sum(trained.trials.values())
    summary.done(
        f"{finished} trials on {workers} workers; registered {trained.model_name} "
        f"v{trained.model_version}, test {trained.metric} "
        f"{trained.test_metrics[trained.metric]:.3f}"
    )

    summary.stage("deployment")
    console.rule("[bold]5. deployment: approve, promote dev -> staging, serve, predict")
    running: list[RunningEndpoint] = []
    try:
        endpoints = deploy(
            settings, config_path, trained.model_name, trained.model_version, files[0], running
        )
        summary.done(
            f"approved, promoted to {' and '.join(endpoints)}; both endpoints answered "
            "the same rows"
        )
        summary.stage("monitoring")
        console.rule("[bold]6. monitoring: clean traffic, then shifted traffic")
        verdicts = monitor_demo(settings, running[-1], data, rows)
        summary.done("; ".join(verdicts))
        console.rule("[bold]7. status: what ran, what serves, what is next")
        show_status(settings)
    finally:
        for endpoint in running:
            endpoint.stop()

    console.rule("[bold]summary")
    summary.print(time.perf_counter() - started)
    console.print(f"store: {store.uri}")
    console.print("Explore it:")
    console.print(f"  cd {workspace} && lockgate data versions && lockgate ls processed/")
    console.print("  lockgate runs                 # the study's trials")
    console.print(f"  open {trained.report_path}")
    console.print("  lockgate ui                   # MLflow on http://127.0.0.1:5000")
    console.print("  lockgate models               # versions, approvals, where each serves")
    console.print("  lockgate history --env staging")
    console.print("  lockgate monitor reports --env staging   # the clean and the drifted run")
    console.print(
        "  lockgate status               # every pipeline's runs, what serves, what is due"
    )
    console.print("  lockgate logs --level warning # the structured logs, with counts")
    console.print(
        "  lockgate up                   # keep it all running: uploads, schedule, endpoints"
    )
    for env in endpoints:
        console.print(f"  lockgate serve --env {env:<8}     # its endpoint (the demo stopped it)")


def deploy(
    settings: Settings,
    config_path: Path,
    model: str,
    version: int,
    sample: Path,
    running: list[RunningEndpoint],
) -> list[str]:
    """Approve ``version`` for staging, promote it to dev and staging, start both endpoints
    (appended to ``running``: the caller stops them), send them rows, show staging's history.
    Returns the environments."""
    import json

    from lockgate.cli.deployment import environment, print_history, print_outcome
    from lockgate.cli.serving import start_endpoint, state_file
    from lockgate.config import current_user
    from lockgate.pipelines.deployment.approvals import record_decision
    from lockgate.pipelines.deployment.promotion import promote
    from lockgate.pipelines.runs import Trigger
    from lockgate.pipelines.training.package import package_prefix, package_sha256_of

    envs = {name: environment(settings, name) for name in ("dev", "staging")}
    home = envs["dev"]
    info = json.loads(home.store.get(package_prefix(model, version) + "package.json"))
    reviewer = "demo-reviewer"
    record_decision(
        home.ledger,
        model,
        version,
        "approved",
        env="staging",
        by=reviewer,
        note="demo: test metrics look right",
        package_sha256=package_sha256_of(info),
    )
    console.print(f"{model} version {version} approved for staging by {reviewer}")
    for env in envs:
        outcome = promote(
            home,
            envs[env],
            model,
            version,
            by=current_user(),
            environments=envs,
            say=stage,
            trigger=Trigger("demo", "lockgate demo"),
        )
        print_outcome(env, outcome, hint=False)
        endpoint = start_endpoint(
            config_path,
            env,
            state_file(settings, env),
            settings.for_env(env).env_dir / "logs" / "endpoint.log",
        )
        running.append(endpoint)
        console.print(f"endpoint {settings.endpoint_name(env)} serving at {endpoint.url}")
    show_predictions(running, sample)
    print_history(settings, "staging")
    return list(envs)


def monitor_demo(settings: Settings, endpoint: RunningEndpoint, data: Path, rows: int) -> list[str]:
    """Send the endpoint a month of unshifted traffic and run monitoring on it, then a month
    of shifted traffic (the generator's drift knob) and run it again on that alone. One line
    per run: what it found."""
    from datetime import UTC, datetime

    from lockgate.cli.monitoring import monitor_env, print_result
    from lockgate.pipelines.runs import Trigger
    from lockgate.sample.churn import write_churn_csv
    from lockgate.wiring import open_store

    store = open_store(settings.for_env(endpoint.env).store_uri)
    traffic = min(rows, 3000)
    found = []
    for label, seed, shift in (("unshifted", 9, 0.0), ("shifted (shift=0.8)", 10, 0.8)):
        path = write_churn_csv(data / f"traffic-{seed}.csv", traffic, seed=seed, shift=shift)
        started = datetime.now(UTC)
        sent = send_traffic(endpoint.url, path)
        console.print(f"sent {sent} {label} rows to {endpoint.url}")
        wait_for_capture(store, settings.endpoint_name(endpoint.env), started, sent)
        seconds = int((datetime.now(UTC) - started).total_seconds()) + 2
        result = monitor_env(
            settings,
            endpoint.env,
            store,
            window=f"{seconds}s",
            trigger=Trigger("demo", "lockgate demo"),
        )
        print_result(result)
        drifted = f" ({len(result.drifted)} features drifted)" if result.drifted else ""
        found.append(f"{label.split(' ')[0]} traffic: {result.verdict or 'ok'}{drifted}")
    return found


class Summary:
    """The demo's stages: what each did and how long it took, printed as the closing table."""

    def __init__(self) -> None:
        self.rows: list[tuple[str, str, float]] = []
        self._stage: tuple[str, float] | None = None

    def stage(self, name: str) -> None:
        self._stage = (name, time.perf_counter())

    def done(self, result: str) -> None:
        assert self._stage is not None  # noqa: S101 - stage() comes first
        name, began = self._stage
        self.rows.append((name, result, time.perf_counter() - began))
        self._stage = None

    def print(self, total: float) -> None:
        from rich.table import Table

        table = Table("stage", "result", "time", box=None)
        for name, result, seconds in self.rows:
            table.add_row(name, result, f"{seconds:.1f}s")
        table.add_row("[bold]total[/bold]", "", f"[bold]{total:.1f}s[/bold]")
        console.print(table)


def show_status(settings: Settings) -> None:
    """``lockgate status`` of the demo's workspace, two runs per pipeline."""
    from datetime import UTC, datetime

    from lockgate.cli.status import gather
    from lockgate.cli.status_view import print_status

    print_status(gather(settings, 2, datetime.now(UTC)))


def send_traffic(url: str, path: Path, batch: int = 100) -> int:
    """POST ``path``'s rows (CSV with a header) in batches; the number of rows sent."""
    import urllib.request

    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    header, body = lines[0], lines[1:]
    for start in range(0, len(body), batch):
        request = urllib.request.Request(  # noqa: S310 - the endpoint the demo started
            url + "/invocations",
            data=(header + "".join(body[start : start + batch])).encode(),
            headers={"Content-Type": "text/csv", "Accept": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            response.read()
    return len(body)


def wait_for_capture(store: Store, endpoint: str, since: datetime, rows: int) -> None:
    """Wait (bounded) until the endpoint's capture buffer has reached the store."""
    from datetime import UTC, datetime, timedelta

    from lockgate.pipelines.monitoring.capture import read_capture

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        # Capture times are whole seconds: start from the second the traffic started in.
        captured = read_capture(
            store, endpoint, since.replace(microsecond=0), datetime.now(UTC) + timedelta(seconds=1)
        )
        if sum(record.input.count(b"\n") - 1 for record in captured) >= rows:
            return
        time.sleep(0.5)
    console.print("[yellow]warning:[/yellow] capture is late; the report may miss rows")


def show_predictions(endpoints: list[RunningEndpoint], sample: Path, rows: int = 5) -> None:
    """Send the first ``rows`` rows of ``sample`` to every endpoint; print what each answered."""
    import json
    import urllib.request

    from rich.table import Table

    with sample.open(encoding="utf-8") as handle:
        body = "".join(line for _, line in zip(range(rows + 1), handle, strict=False)).encode()
    table = Table(title=f"predictions for the first {rows} rows of {sample.name}")
    table.add_column("customer_id")
    answers = []
    for endpoint in endpoints:
        request = urllib.request.Request(  # noqa: S310 - the endpoint the demo just started
            endpoint.url + "/invocations",
            data=body,
            headers={"Content-Type": "text/csv", "Accept": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            answers.append(json.loads(response.read()))
        table.add_column(f"{endpoint.env}: churned (p)")
    for index, item in enumerate(answers[0]["predictions"]):
        cells = [str(item.get("customer_id", index))]
        for answer in answers:
            prediction = answer["predictions"][index]
            probability = (prediction.get("probabilities") or {}).get(str(prediction["prediction"]))
            suffix = f" ({probability:.2f})" if probability is not None else ""
            cells.append(f"{prediction['prediction']}{suffix}")
        table.add_row(*cells)
    console.print(table)
