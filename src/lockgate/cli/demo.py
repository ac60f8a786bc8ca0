"""``lockgate demo``: the lifecycle on generated sample data, in a workspace kept afterwards.

The stages so far: generate data -> upload to raw/ -> the runtime dispatches the S3-shaped
event -> the data pipeline commits a version (and quarantines a broken file) -> a parallel
Optuna study trains model families on it -> the best model is packaged and registered
(pending approval) -> an HTML report of the study.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Annotated

import typer

from lockgate.cli.app import app
from lockgate.cli.output import console, stage, transfer_progress

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
    from lockgate.cli.commands import print_prep
    from lockgate.cli.project import render_config
    from lockgate.config import load_settings
    from lockgate.local.runtime import Runtime
    from lockgate.pipelines.data.versions import list_versions
    from lockgate.sample.churn import CHURN_COLUMNS, CHURN_TARGET, write_churn_csv
    from lockgate.wiring import open_store

    started = time.perf_counter()
    if fresh and workspace.exists():
        shutil.rmtree(workspace)
    data = workspace / "data"
    data.mkdir(parents=True, exist_ok=True)
    config_path = workspace / "lockgate.toml"
    config_path.write_text(
        render_config("churn", CHURN_TARGET, "classification", dict(CHURN_COLUMNS)) + DEMO_TRAINING,
        encoding="utf-8",
    )
    console.rule("[bold]1. sample data")
    files = [
        write_churn_csv(data / "churn-2026-01.csv", rows, seed=7),
        write_churn_csv(data / "churn-2026-02.csv.gz", rows, seed=8, gzip=True),
        data / "churn-broken-export.csv",
    ]
    files[-1].write_text(BROKEN_CSV, encoding="utf-8")
    for path in files:
        console.print(f"generated {path} ({path.stat().st_size / 1e6:.1f} MB)")

    settings = load_settings(config_path)
    store = open_store(settings.store_uri)
    console.rule("[bold]2. upload to raw/churn/")
    for path in files:
        with transfer_progress(f"put {path.name}", path.stat().st_size) as advance:
            info = store.put_file(f"raw/churn/{path.name}", path, progress=advance)
        console.print(f"put raw/churn/{path.name} (etag {info.etag[:12]})")

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

    console.rule("[bold]4. training: Optuna study, best model, registry")
    from lockgate.cli.training import print_training, run_training

    trained = run_training(settings, store, trials=trials, workers=workers)
    print_training(trained)

    console.rule("[bold]summary")
    versions = list_versions(store, "churn")
    latest = versions[-1]
    console.print(
        f"dataset churn: {len(versions)} version(s); latest {latest.version} with "
        f"{latest.rows['train']}/{latest.rows['validation']}/{latest.rows['test']} "
        f"train/validation/test rows x {latest.n_features} features"
    )
    console.print(f"store: {store.uri}")
    console.print(f"took {time.perf_counter() - started:.1f}s. Explore it:")
    console.print(f"  cd {workspace} && lockgate data versions && lockgate ls processed/")
    console.print("  lockgate runs                 # the study's trials")
    console.print(f"  open {trained.report_path}")
    console.print("  lockgate ui                   # MLflow on http://127.0.0.1:5000")
