"""``lockgate up``: the local event runtime."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from typing import Any

import typer

from lockgate.cli.app import Context, app
from lockgate.cli.commands import print_prep
from lockgate.cli.output import console, stage


@app.command()
def up(ctx: typer.Context) -> None:
    """Run the local event runtime: every upload to raw/ is prepared as it arrives."""
    from lockgate.local.runtime import Dispatch, Runtime

    context: Context = ctx.obj
    settings = context.settings()
    if not settings.datasets:
        settings.dataset()  # raises the "no dataset configured" error
    store = context.open_store(settings)
    train_version: Callable[[str, str], None] | None = None
    if settings.file.train.on_new_data:
        from lockgate.cli.training import print_training, run_training

        def train_new_version(dataset: str, version: str) -> None:
            console.print(f"event: new dataset version {dataset} {version}: training starts")
            named = context.settings(dataset)
            print_training(run_training(named, store, data_version=version))

        train_version = train_new_version

    runtime = Runtime(store, settings.datasets, stage, train_version)
    stop = threading.Event()

    def request_stop(signum: int, _frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)

    def show(dispatch: Dispatch) -> None:
        console.print(
            f"event: {len(dispatch.keys)} object(s) under raw/: {', '.join(dispatch.keys)}"
        )
        if dispatch.error:
            console.print(f"[red]failed[/red] {dispatch.error}; retry with `lockgate data prep`")
            return
        assert dispatch.result is not None  # noqa: S101 - no error means a result
        for result in dispatch.result.prepared:
            print_prep(result)
        for key, reason in dispatch.result.ignored:
            console.print(f"  ignored {key}: {reason}")

    from lockgate.cli.schedules import Scheduled

    scheduled = Scheduled(settings, store)
    interval = settings.file.runtime.interval_for(store.uri)
    runtime.warm_up()
    trigger = " and processed/ (training on new versions)" if train_version is not None else ""
    console.print(
        f"lockgate up: watching {store.uri} raw/{trigger} every {interval:g}s for "
        f"{', '.join(sorted(settings.datasets))} (Ctrl-C to stop)"
    )
    console.print(f"monitoring: {scheduled.describe()}")
    runtime.run(stop, interval, show, scheduled.tick)
    console.print("lockgate up: stopped")
