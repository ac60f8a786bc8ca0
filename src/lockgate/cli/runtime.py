"""``lockgate up``: the local event runtime."""

from __future__ import annotations

import signal
import sys
import threading
from typing import TYPE_CHECKING, Any

import typer

from lockgate.cli.app import Context, app
from lockgate.cli.commands import print_prep
from lockgate.cli.output import console

if TYPE_CHECKING:
    from lockgate.pipelines.runs import Trigger
    from lockgate.ports.store import Store


@app.command()
def up(ctx: typer.Context) -> None:
    """Run the local runtime: uploads are prepared as they arrive, new versions trained (with
    train.on_new_data), monitoring runs on its schedule, endpoints are kept serving."""
    from lockgate.cli.app import configure_logs
    from lockgate.cli.monitoring import monitor_env, print_result
    from lockgate.cli.serving import state_file
    from lockgate.local.runtime import Dispatch
    from lockgate.local.supervisor import EndpointSpec
    from lockgate.local.up import Hooks, LocalRuntime
    from lockgate.pipelines.monitoring.schedule import Schedule
    from lockgate.wiring import open_store

    context: Context = ctx.obj
    settings = context.settings()
    configure_logs(settings, context.verbose, pipeline="runtime")
    if not settings.datasets:
        settings.dataset()  # raises the "no dataset configured" error
    store = context.open_store(settings)
    stores: dict[str, Store] = {store.uri: store}

    def env_store(env: str) -> Store:
        uri = settings.for_env(env).store_uri
        if uri not in stores:
            stores[uri] = open_store(uri)
        return stores[uri]

    # Absolute: the children's command lines say which project they belong to.
    base = [sys.executable, "-m", "lockgate", "--config", str(settings.config_path.resolve())]

    def study_command(dataset: str, version: str | None) -> list[str]:
        command = [*base, "--env", settings.env]
        if context.store:
            command += ["--store", context.store]
        command += ["train", "--dataset", dataset]
        return command + (["--data-version", version] if version else [])

    def endpoint_spec(env: str) -> EndpointSpec:
        return EndpointSpec(
            env,
            [*base, "serve", "--env", env],
            state_file(settings, env),
            settings.for_env(env).env_dir / "logs" / "endpoint.log",
        )

    def monitor(env: str, trigger: Trigger) -> None:
        print_result(monitor_env(settings, env, env_store(env), trigger=trigger))

    def show(dispatch: Dispatch) -> None:
        if dispatch.error:
            console.print(f"[red]failed[/red] {dispatch.error}; retry with `lockgate data prep`")
            return
        assert dispatch.result is not None  # noqa: S101 - no error means a result
        for result in dispatch.result.prepared:
            print_prep(result)
        for key, reason in dispatch.result.ignored:
            console.print(f"  ignored {key}: {reason}", markup=False)

    def say(message: str) -> None:
        console.print(message, markup=False)

    runtime = LocalRuntime(
        settings,
        store,
        Hooks(say, show, monitor, study_command, endpoint_spec, env_store),
    )
    stop = threading.Event()

    def request_stop(signum: int, _frame: Any) -> None:
        if stop.is_set():  # a second Ctrl-C: no more grace, but still stop what was started
            console.print("stopping now: running jobs are stopped and recorded interrupted")
            runtime.hurry()
        stop.set()

    runtime.claim()
    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    config = settings.file.runtime
    trigger = (
        " and processed/ (training on new versions)" if settings.file.train.on_new_data else ""
    )
    console.print(
        f"lockgate up: watching {store.uri} raw/{trigger} every {runtime.interval:g}s for "
        f"{', '.join(sorted(settings.datasets))} (Ctrl-C to stop)",
        markup=False,
    )
    schedule = Schedule.parse(settings.file.monitor.schedule)
    console.print(
        f"monitoring: {settings.file.monitor.schedule} ({schedule.describe()}) for every "
        "environment with a release",
        markup=False,
    )
    console.print(
        f"jobs: {config.workers} at a time; endpoints: "
        + ("kept serving for every environment with a release" if config.serve else "off"),
        markup=False,
    )
    runtime.run(stop)
    console.print("lockgate up: stopped")
