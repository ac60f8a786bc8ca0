"""Commands of the endpoints: serve an environment's current release, send it rows."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from lockgate.cli.app import Context, app
from lockgate.cli.output import err
from lockgate.errors import ConfigError, LockgateError, ObjectNotFound

if TYPE_CHECKING:
    from lockgate.config import Settings
    from lockgate.ports.store import Store

PREDICT_TIMEOUT = 60.0


EnvOption = Annotated[
    str | None, typer.Option("--env", help="Environment [default: the global --env]")
]
"""A command's own ``--env``, read with :func:`named_env`."""


def named_env(ctx: typer.Context, env: str | None) -> tuple[Settings, str]:
    """The settings and the environment a command's ``--env`` names (default: the global one)."""
    context: Context = ctx.obj
    settings = context.settings()
    name = env or settings.env
    if name not in settings.env_names and name != settings.env:
        raise ConfigError(
            f"no environment '{name}' (environments: {', '.join(settings.env_names)})"
        )
    return settings, name


def state_file(settings: Settings, env: str) -> Path:
    """Where the server of ``env`` writes its address and token while it runs."""
    return settings.for_env(env).env_dir / "endpoint.json"


@app.command()
def serve(
    ctx: typer.Context,
    env: EnvOption = None,
    port: Annotated[
        int | None,
        typer.Option(help="Port; 0 picks a free one [default: 8080 dev, 8081 staging, 8082 prod]"),
    ] = None,
    host: Annotated[str | None, typer.Option(help="Address [default: 127.0.0.1]")] = None,
) -> None:
    """Serve the environment's current release (SageMaker's /ping and /invocations)."""
    from lockgate.cli.app import configure_logs
    from lockgate.local.endpoint import ping, read_state
    from lockgate.pipelines.deployment.copying import local_copy
    from lockgate.pipelines.deployment.releases import read_history
    from lockgate.pipelines.ledger import Ledger
    from lockgate.pipelines.training.package import package_sha256
    from lockgate.serving.server import run
    from lockgate.wiring import open_store

    settings, name = named_env(ctx, env)
    env_settings = settings.for_env(name)
    # The server's records go to its environment's log folder, as the deployment pipeline's.
    configure_logs(env_settings, ctx.obj.verbose, pipeline="deployment")
    store = open_store(env_settings.store_uri)
    current = read_history(Ledger(store), name).current()
    if current is None:
        raise LockgateError(
            f"nothing is released to {name} yet; promote a model first: "
            f"lockgate promote MODEL VERSION --to {name}"
        )
    state = state_file(settings, name)
    running = read_state(state)
    if running is not None and ping(running.url):
        raise LockgateError(
            f"an endpoint for {name} already runs at {running.url} (pid {running.pid}); "
            "stop it first (promotions hot-swap it, no restart needed)"
        )
    try:
        folder = local_copy(store, current.package_prefix, env_settings.env_dir / "deploy")
    except ObjectNotFound:
        raise LockgateError(
            f"release #{current.seq} of {name} ({current.model} version {current.version}) "
            f"has no package at {current.package_prefix} in {store.uri}; roll back "
            f"(lockgate rollback --env {name}) or promote another version"
        ) from None
    if package_sha256(folder) != current.package_sha256:
        raise LockgateError(
            f"{current.package_prefix} in {store.uri} does not match release #{current.seq}; "
            "refusing to serve it"
        )
    config = settings.env_config(name).endpoint

    def ready(url: str) -> None:
        err.print(
            f"serving {current.model} version {current.version} (release #{current.seq} of "
            f"{name}) on {url}; Ctrl-C stops"
        )
        # A promotion that landed while this server was loading saw no server to swap:
        # catch up with the ledger once, now that promotions can find it.
        threading.Thread(
            target=_catch_up,
            args=(store, name, current.seq, state, env_settings.env_dir / "deploy"),
            name="lockgate-catch-up",
            daemon=True,
        ).start()

    run(
        folder,
        host=host or config.host,
        port=settings.endpoint_port(name) if port is None else port,
        store=store,
        env=name,
        endpoint_name=settings.endpoint_name(name),
        capture_percent=config.capture_percent,
        max_body_bytes=config.max_body_bytes,
        release={
            "seq": current.seq,
            "env": name,
            "model": current.model,
            "version": current.version,
            "package_sha256": current.package_sha256,
        },
        state_file=state,
        ready=ready,
    )


def _catch_up(store: Store, env: str, served: int, state: Path, work_dir: Path) -> None:
    from lockgate.local.endpoint import LocalEndpoint
    from lockgate.pipelines.deployment.copying import local_copy
    from lockgate.pipelines.deployment.releases import read_history
    from lockgate.pipelines.ledger import Ledger
    from lockgate.ports.endpoint import DeployRequest

    try:
        current = read_history(Ledger(store), env).current()
        if current is None or current.seq == served:
            return
        err.print(f"release #{current.seq} landed while starting; swapping it in")
        LocalEndpoint(state, env).deploy(
            DeployRequest(
                env=env,
                endpoint_name=env,
                model=current.model,
                version=current.version,
                package_sha256=current.package_sha256,
                package_dir=local_copy(store, current.package_prefix, work_dir),
                package_prefix=current.package_prefix,
                release_seq=current.seq,
            )
        )
    except LockgateError as exc:  # the server keeps serving what it loaded; say why
        err.print(f"[yellow]warning:[/yellow] could not catch up with release: {exc}")


@app.command()
def predict(
    ctx: typer.Context,
    rows: Annotated[Path, typer.Argument(help="Rows to score: .csv (with a header) or .jsonl")],
    env: EnvOption = None,
    url: Annotated[
        str | None, typer.Option(help="Endpoint URL [default: the environment's running server]")
    ] = None,
    batch: Annotated[int, typer.Option(min=1, help="Most rows per request.")] = 500,
    max_bytes: Annotated[
        int, typer.Option(min=1024, help="Most bytes per request (the endpoint's limit is 6 MB).")
    ] = 1_000_000,
) -> None:
    """Send rows to an endpoint and print its predictions as CSV."""
    from lockgate.local.endpoint import read_state

    settings, name = named_env(ctx, env)
    if url is None:
        running = read_state(state_file(settings, name))
        if running is None:
            raise LockgateError(
                f"no endpoint is running for {name}; start one: lockgate serve --env {name}"
            )
        url = running.url
    writer: csv.DictWriter[str] | None = None
    total = 0
    model = ""
    for body, content_type in _requests(rows, batch, max_bytes):
        document = _invoke(url.rstrip("/") + "/invocations", body, content_type)
        predictions = document.get("predictions", [])
        model = f"{document.get('model')} version {document.get('model_version')}"
        flat = [_flatten(item) for item in predictions]
        if writer is None and flat:
            writer = csv.DictWriter(sys.stdout, fieldnames=list(flat[0]), lineterminator="\n")
            writer.writeheader()
        if writer is not None:
            writer.writerows(flat)
        total += len(flat)
    sys.stdout.flush()
    if not total:
        raise LockgateError(f"{rows} has no rows to predict")
    err.print(f"{total} row(s) predicted by {model} at {url}")


def _requests(path: Path, batch: int, max_bytes: int) -> Iterator[tuple[bytes, str]]:
    """Request bodies in the file's own format, each at most ``batch`` rows and (unless one
    row alone is larger) ``max_bytes`` bytes."""
    if not path.is_file():
        raise FileNotFoundError(2, "No such file", str(path))
    suffix = path.name.lower()
    if suffix.endswith(".jsonl") or suffix.endswith(".ndjson"):
        yield from _jsonl_requests(path, batch, max_bytes)
        return
    if not suffix.endswith(".csv"):
        raise ConfigError(f"{path}: predict reads .csv (with a header row) or .jsonl files")
    # utf-8-sig: a spreadsheet's "CSV UTF-8" starts with a byte-order mark.
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None:
            raise LockgateError(f"{path} is empty")
        head = _csv_body(header, [])
        chunk: list[bytes] = []
        size = len(head)
        for row in reader:
            line = _csv_body(row, [])
            if chunk and (len(chunk) == batch or size + len(line) > max_bytes):
                yield head + b"".join(chunk), "text/csv"
                chunk, size = [], len(head)
            chunk.append(line)
            size += len(line)
        if chunk:
            yield head + b"".join(chunk), "text/csv"


def _jsonl_requests(path: Path, batch: int, max_bytes: int) -> Iterator[tuple[bytes, str]]:
    records: list[bytes] = []
    size = 0
    with path.open(encoding="utf-8-sig") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                record = json.dumps(json.loads(line)).encode()
            except ValueError as exc:
                raise LockgateError(f"{path}:{number} is not JSON: {exc}") from None
            if records and (len(records) == batch or size + len(record) > max_bytes):
                yield _instances(records), "application/json"
                records, size = [], 0
            records.append(record)
            size += len(record) + 1
    if records:
        yield _instances(records), "application/json"


def _instances(records: list[bytes]) -> bytes:
    return b'{"instances": [' + b",".join(records) + b"]}"


def _csv_body(header: list[str], rows: list[list[str]]) -> bytes:
    """``header`` and ``rows`` as CSV lines (quoting what needs it, newlines included)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue().encode()


def _invoke(url: str, body: bytes, content_type: str) -> dict[str, Any]:
    request = urllib.request.Request(  # noqa: S310 - the user's endpoint URL
        url,
        data=body,
        method="POST",
        headers={"Content-Type": content_type, "Accept": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=PREDICT_TIMEOUT) as response:  # noqa: S310
            document: dict[str, Any] = json.loads(response.read())
            return document
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode("utf-8", "replace")
        try:
            detail = str(json.loads(detail).get("error", detail))
        except (ValueError, AttributeError):
            pass
        raise LockgateError(f"the endpoint refused the rows (HTTP {exc.code}): {detail}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise LockgateError(f"cannot reach the endpoint at {url}: {exc}") from None


def _flatten(prediction: dict[str, Any]) -> dict[str, Any]:
    """One CSV row: id columns, the prediction, one ``p_<class>`` column per class."""
    row = {key: value for key, value in prediction.items() if key != "probabilities"}
    for label, probability in (prediction.get("probabilities") or {}).items():
        row[f"p_{label}"] = f"{probability:.6f}"
    return row


@dataclass
class RunningEndpoint:
    """A ``lockgate serve`` child process and the URL it answers on."""

    env: str
    process: subprocess.Popen[bytes]
    url: str
    log: Path

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM (the server drains and flushes its capture), then SIGKILL if it hangs."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout)
        return self.process.returncode


def start_endpoint(
    config: Path, env: str, state: Path, log: Path, timeout: float = 60.0
) -> RunningEndpoint:
    """Start ``lockgate serve --env ENV --port 0`` in the background; wait until /ping is 200.

    Raises:
        LockgateError: it exited or did not become ready in ``timeout`` seconds (its log says
            why; the process is stopped).
    """
    from lockgate.local.endpoint import ping, read_state

    log.parent.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable,
        "-m",
        "lockgate",
        "--config",
        str(config),
        "serve",
        "--env",
        env,
        "--port",
        "0",
    ]
    with log.open("wb") as output:
        process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            command, stdout=output, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        running = read_state(state)
        if running is not None and running.pid == process.pid and ping(running.url):
            return RunningEndpoint(env, process, running.url, log)
        time.sleep(0.05)
    endpoint = RunningEndpoint(env, process, "", log)
    endpoint.stop()
    tail = log.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-3:]
    raise LockgateError(
        f"the {env} endpoint did not come up ({'; '.join(tail) or 'no output'}); see {log}"
    )
