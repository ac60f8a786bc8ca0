"""Serving benchmark: lockgate's endpoint vs ``mlflow models serve``, on the same model.

Trains one HistGradientBoosting package on the demo's churn data (``--rows`` rows), logs the
same model to a temporary MLflow as a pyfunc whose ``load_context`` loads the package (so both
servers do the same work: raw row -> transformer -> model; MLflow also checks each request
against the signature it was logged with), then serves each in turn on 127.0.0.1 --
``python -m lockgate.serving`` (no data capture) and ``mlflow models serve --env-manager local``
(one uvicorn worker, its default) -- and drives both with the same bounded load generator
(bench/loadgen.py): ``--requests`` single-row ``text/csv`` requests (a header and one row,
cycling through 200 customers of the demo's second month), answered in JSON, at each
``--concurrency``, after a check that both predict what the package predicts and a warm-up.

Prints, side by side, the time from start to the first 200 from /ping (polled every 50 ms),
requests/s, p50, p99, errors, and the CPU per request of the server and of the load generator
(the servers share the machine's cores with the load generator, so the CPU cost shows apart
from how the cores were shared), then the ratios the targets are stated in.
Usage: ``python bench/serve.py [--requests 2000] [--concurrency 1,8] [--rows 20000]
[--timeout 300] [--skip-mlflow]``
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import dataclasses
import http.client
import io
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from loadgen import LoadResult, LoadTimeout, run_load

HOST = "127.0.0.1"
BIN = Path(sys.executable).parent
SAMPLE_ROWS = 200
WARMUP = 50
"""Requests sent before measuring (after the 20 that check predictions)."""
READY_TIMEOUT = 120.0
CONTENT_TYPE = "text/csv"
ACCEPT = "application/json"
"""What both servers answer in: MLflow only writes JSON; lockgate answers CSV with CSV unless
asked otherwise."""
# What the issue measured for `mlflow models serve` at concurrency 8, for --skip-mlflow runs.
MLFLOW_REFERENCE = {"per_second": 45.0, "p99": 0.380, "ready": 11.0}


@dataclasses.dataclass
class Served:
    """One server's measurements."""

    name: str
    ready_seconds: float = 0.0
    loads: dict[int, LoadResult] = dataclasses.field(default_factory=dict)
    server_cpu: dict[int, float] = dataclasses.field(default_factory=dict)
    """Server CPU seconds (its whole process group) during each load run."""
    agreement: str = ""


def build_churn_package(root: Path, rows: int) -> Path:
    """Prepare the demo's first month (``rows`` rows) and package a HistGradientBoosting
    classifier fitted on its train split. Returns the package folder."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import roc_auc_score

    from lockgate.config import DatasetConfig
    from lockgate.local.file_store import FileStore
    from lockgate.pipelines.data import prepare
    from lockgate.pipelines.data.versions import load_split, read_manifest, read_verified
    from lockgate.pipelines.training.package import PackageInfo, build_package
    from lockgate.sample.churn import CHURN_COLUMNS, CHURN_TARGET, write_churn_csv

    store = FileStore((root / "store").as_uri())
    config = DatasetConfig(target=CHURN_TARGET, columns=dict(CHURN_COLUMNS))  # type: ignore[arg-type]
    store.put_file("raw/churn/churn-2026-01.csv", write_churn_csv(root / "train.csv", rows, seed=7))
    version = prepare(store, "churn", config).version
    assert version is not None, "the demo data did not prepare into a dataset version"
    manifest = read_manifest(store, "churn", version)
    x_train, y_train = load_split(store, manifest, "train")
    x_test, y_test = load_split(store, manifest, "test")
    model = HistGradientBoostingClassifier(random_state=0).fit(x_train, y_train)
    auc = float(roc_auc_score(y_test, model.predict_proba(x_test)[:, 1]))
    print(f"  {len(y_train)} training rows, test ROC AUC {auc:.3f}", flush=True)
    return build_package(
        root / "package",
        model=model,
        transformer_bytes=read_verified(store, manifest, "transformer.pkl"),
        schema=json.loads(read_verified(store, manifest, "schema.json")),
        info=PackageInfo(
            name="churn",
            dataset="churn",
            data_version=manifest.version,
            family=type(model).__name__,
            params={},
            metrics={"roc_auc": auc},
        ),
    )


def request_bodies(root: Path) -> list[bytes]:
    """Single-row CSV bodies (header + one row, without the target), one per customer of the
    demo's second month, as a client would write them."""
    from lockgate.sample.churn import CHURN_TARGET, write_churn_csv

    path = write_churn_csv(root / "requests.csv", SAMPLE_ROWS, seed=8)
    with path.open(newline="", encoding="utf-8") as file:
        header, *rows = csv.reader(file)
    keep = [index for index, name in enumerate(header) if name != CHURN_TARGET]
    bodies = []
    for row in rows:
        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\n")
        writer.writerows([[header[i] for i in keep], [row[i] for i in keep]])
        bodies.append(text.getvalue().encode())
    return bodies


def request_frame(bodies: list[bytes]) -> Any:
    """The request rows as one DataFrame, parsed as MLflow's scoring server parses CSV."""
    import pandas as pd

    return pd.concat([pd.read_csv(io.BytesIO(body)) for body in bodies], ignore_index=True)


def expected_predictions(package: Path, bodies: list[bytes]) -> list[str]:
    from lockgate.pipelines.training.package import load_package

    return [str(label) for label in load_package(package).predict(request_frame(bodies))]


def log_to_mlflow(root: Path, package: Path, bodies: list[bytes]) -> tuple[str, dict[str, str]]:
    """Log the package as an MLflow pyfunc model in a temporary tracking store.

    Returns:
        The model URI and the environment a child process needs to resolve it.
    """
    import mlflow.pyfunc
    from mlflow.models import infer_signature

    from lockgate.pipelines.training.package import load_package
    from lockgate.tracking.mlflow_tracker import local_tracking_uri

    tracking_uri, artifacts = local_tracking_uri(root / "mlflow")
    (root / "mlflow").mkdir()
    mlflow.set_tracking_uri(tracking_uri)
    experiment = mlflow.create_experiment("bench-serve", artifact_location=artifacts)
    # The signature is what the scoring server parses CSV with; infer it from the request rows.
    examples = request_frame(bodies)
    # MLflow's hints (integer columns, pickling, type hints) are true and not news here; it
    # resets warning filters inside log_model, so its stderr is held back unless it fails.
    logging.getLogger("mlflow").setLevel(logging.ERROR)
    hints = io.StringIO()
    try:
        with (
            contextlib.redirect_stderr(hints),
            warnings.catch_warnings(),
            mlflow.start_run(experiment_id=experiment),
        ):
            warnings.simplefilter("ignore")

            class PackageModel(mlflow.pyfunc.PythonModel):  # type: ignore[misc]
                """The package as a pyfunc: its predictions of raw rows. A local class, so
                cloudpickle stores it by value and the server needs nothing of this script."""

                def load_context(self, context: Any) -> None:
                    from lockgate.pipelines.training.package import load_package

                    self.package = load_package(Path(context.artifacts["package"]))

                # No type hints: MLflow would validate inputs against them.
                def predict(self, context, model_input, params=None):  # type: ignore[no-untyped-def]
                    return self.package.predict(model_input)

            info = mlflow.pyfunc.log_model(
                name="churn",
                python_model=PackageModel(),
                artifacts={"package": str(package)},
                signature=infer_signature(examples, load_package(package).predict(examples)),
            )
    except BaseException:
        print(hints.getvalue(), file=sys.stderr)
        raise
    return info.model_uri, {"MLFLOW_TRACKING_URI": tracking_uri}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def group_processes(pgid: int) -> list[list[str]]:
    """The ``/proc/<pid>/stat`` fields (after the command name) of the processes in process
    group ``pgid`` that have not exited (Linux)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # the process ended meanwhile
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            found.append(fields)
    return found


def group_cpu_seconds(pgid: int) -> float:
    """User + system CPU seconds of the live processes in process group ``pgid``."""
    ticks = sum(int(fields[11]) + int(fields[12]) for fields in group_processes(pgid))
    return ticks / os.sysconf("SC_CLK_TCK")


def stop(process: subprocess.Popen[bytes]) -> None:
    """Stop a server and everything it started (its own process group): SIGTERM, and SIGKILL
    for whatever is still running 15 s later. `mlflow models serve` runs uvicorn as a child,
    which outlives the CLI by a moment, so the whole group is waited for, not just the CLI."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    deadline = time.perf_counter() + 15
    while process.poll() is None or group_processes(process.pid):
        if time.perf_counter() > deadline:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            break
        time.sleep(0.05)


def ping(port: int) -> int | None:
    connection = http.client.HTTPConnection(HOST, port, timeout=1.0)
    try:
        connection.request("GET", "/ping")
        return connection.getresponse().status
    except OSError:
        return None
    finally:
        connection.close()


@contextlib.contextmanager
def serving(
    command: list[str], env: dict[str, str], port: int, log: Path
) -> Iterator[tuple[subprocess.Popen[bytes], float]]:
    """Start a server in its own process group; yield it and the seconds from start to the
    first 200 from /ping (polled every 50 ms). The group is stopped on leaving, however."""
    with log.open("wb") as output:
        started = time.perf_counter()
        process = subprocess.Popen(
            command,
            env={**os.environ, **env},
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        while ping(port) != 200:
            if process.poll() is not None or time.perf_counter() - started > READY_TIMEOUT:
                tail = log.read_text(errors="replace")[-3000:]
                raise SystemExit(f"{' '.join(command)} did not become ready:\n{tail}")
            time.sleep(0.05)
        yield process, time.perf_counter() - started
    finally:
        stop(process)


def agreement(port: int, bodies: list[bytes], expected: list[str]) -> str:
    """Whether the server's predictions for the first rows are the package's, as a note."""
    found = []
    for body in bodies[:20]:
        connection = http.client.HTTPConnection(HOST, port, timeout=10)
        try:
            headers = {"Content-Type": CONTENT_TYPE, "Accept": ACCEPT}
            connection.request("POST", "/invocations", body, headers)
            response = connection.getresponse()
            text = response.read().decode()
        finally:
            connection.close()
        if response.status != 200:
            raise SystemExit(f"a warm-up request failed: HTTP {response.status}: {text[:300]}")
        try:
            found.append(str(_first_prediction(json.loads(text))))
        except (ValueError, LookupError, TypeError):
            return f"predictions not found in the response: {text[:200]}"
    same = sum(a == b for a, b in zip(found, expected, strict=False))
    return f"{same}/{len(found)} predictions as the package's (a response: {text.strip()[:300]})"


def _first_prediction(document: Any) -> Any:
    """The first predicted label in a JSON response: ``{"predictions": [...]}`` or a list,
    whose items are labels or objects with a ``label`` / ``prediction``."""
    if isinstance(document, dict):
        document = document.get("predictions", document)
    item = document[0] if isinstance(document, list) else document
    if isinstance(item, dict):
        return item.get("label", item.get("prediction"))
    return item


@dataclasses.dataclass(frozen=True)
class Workload:
    """What every server is sent, and the limits of a run."""

    bodies: list[bytes]
    expected: list[str]
    """The package's own prediction for each body."""
    requests: int
    concurrencies: list[int]
    timeout: float
    env: dict[str, str]
    """Environment variables for the servers, over this process's own."""


def measure(name: str, command: list[str], port: int, work: Workload, log: Path) -> Served:
    """Start one server, time it to ready, check and warm it up, then load it at each
    concurrency; it is stopped before this returns."""
    served = Served(name)
    print(f"{name}: starting {' '.join(command)}", flush=True)
    with serving(command, work.env, port, log) as (process, ready):
        served.ready_seconds = ready
        served.agreement = agreement(port, work.bodies, work.expected)
        warmup = run_load(
            HOST, port, work.bodies, CONTENT_TYPE, accept=ACCEPT, requests=WARMUP, concurrency=1
        )
        if warmup.errors:
            raise SystemExit(f"{name} failed its warm-up: {warmup.first_error}")
        for concurrency in work.concurrencies:
            cpu = group_cpu_seconds(process.pid)
            result = run_load(
                HOST,
                port,
                work.bodies,
                CONTENT_TYPE,
                accept=ACCEPT,
                requests=work.requests,
                concurrency=concurrency,
                timeout=work.timeout,
            )
            served.server_cpu[concurrency] = group_cpu_seconds(process.pid) - cpu
            served.loads[concurrency] = result
            print(
                f"  concurrency {concurrency}: {result.per_second:.0f} req/s, "
                f"p99 {1000 * result.percentile(99):.1f} ms, {result.errors} errors",
                flush=True,
            )
    return served


def table_cells(served: Served, concurrency: int) -> dict[str, str]:
    """One server's column of the table, for one concurrency."""
    result = served.loads[concurrency]
    return {
        "requests/s": f"{result.per_second:.0f}",
        "p50 ms": f"{1000 * result.percentile(50):.1f}",
        "p99 ms": f"{1000 * result.percentile(99):.1f}",
        "errors (non-2xx or failed)": str(result.errors),
        "server CPU ms / request": f"{1000 * served.server_cpu[concurrency] / result.requests:.2f}",
        "load generator CPU ms / request": (
            f"{1000 * result.client_cpu_seconds / result.requests:.2f}"
        ),
    }


def print_table(servers: list[Served], concurrencies: list[int]) -> None:
    width = 48
    print(f"\n{'':<{width}}" + "".join(f"{served.name:>12}" for served in servers))
    ready = "".join(f"{served.ready_seconds:>12.2f}" for served in servers)
    print(f"{'time to ready: start to first 200 from /ping (s)':<{width}}{ready}")
    for concurrency in concurrencies:
        columns = [table_cells(served, concurrency) for served in servers]
        for label in columns[0]:
            cells = "".join(f"{column[label]:>12}" for column in columns)
            print(f"{f'concurrency {concurrency}: {label}':<{width}}{cells}")
    for served in servers:
        print(f"{served.name}: {served.agreement}")
        for concurrency, result in served.loads.items():
            if result.first_error:
                print(f"  first error at concurrency {concurrency}: {result.first_error}")


def print_targets(ours: Served, theirs: Served | None, concurrency: int) -> None:
    """The issue's targets, at ``concurrency`` (8 unless it was not measured)."""
    result = ours.loads[concurrency]
    if theirs is not None:
        reference = {
            "per_second": theirs.loads[concurrency].per_second,
            "p99": theirs.loads[concurrency].percentile(99),
            "ready": theirs.ready_seconds,
        }
        source = "mlflow as measured above"
    else:
        reference, source = MLFLOW_REFERENCE, "the issue's figures for mlflow (--skip-mlflow)"
    speedup = result.per_second / reference["per_second"]
    p99_ratio = reference["p99"] / result.percentile(99)
    ready = ours.ready_seconds

    def verdict(met: bool) -> str:
        return "met" if met else "NOT met"

    print(f"\nat concurrency {concurrency}, against {source}:")
    for label, ratio in (
        ("lockgate / mlflow throughput", speedup),
        ("mlflow p99 / lockgate p99", p99_ratio),
    ):
        print(f"{label + ':':<30}{ratio:>6.1f}x  (target >= 10x: {verdict(ratio >= 10)})")
    print(
        f"time to ready: lockgate {ready:.2f} s, mlflow {reference['ready']:.2f} s "
        f"({reference['ready'] / ready:.1f}x)  (target < 2 s: {verdict(ready < 2)})"
    )


def concurrencies(text: str) -> list[int]:
    values = [int(part) for part in text.split(",")]
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError("concurrencies are positive integers, e.g. 1,8")
    return values


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000, help="requests per load run")
    parser.add_argument(
        "--concurrency", type=concurrencies, default=[1, 8], help="connections, e.g. 1,8"
    )
    parser.add_argument("--rows", type=int, default=20_000, help="rows of training data")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per load run")
    parser.add_argument("--skip-mlflow", action="store_true", help="serve lockgate only")
    args = parser.parse_args()
    # `kill` acts as Ctrl-C: the finally blocks run, so no server outlives the benchmark.
    signal.signal(signal.SIGTERM, signal.default_int_handler)

    load_before = os.getloadavg()[0]  # other work on the machine skews every figure below
    root = Path(tempfile.mkdtemp(prefix="lockgate-bench-serve-"))
    quiet = {"MLFLOW_DISABLE_TELEMETRY": "true", "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}
    os.environ.update(quiet)
    # Every temp file, ours, MLflow's and the servers', goes in `root`.
    tempfile.tempdir = str(root)
    env = {**quiet, "TMPDIR": str(root)}
    # `mlflow models serve` runs `uvicorn` from PATH, as in an activated virtualenv.
    env["PATH"] = f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"
    try:
        print(f"training a HistGradientBoosting package on {args.rows} rows ...", flush=True)
        package = build_churn_package(root, args.rows)
        bodies = request_bodies(root)
        work = Workload(
            bodies,
            expected_predictions(package, bodies),
            args.requests,
            args.concurrency,
            args.timeout,
            env,
        )
        port = free_port()
        command = [sys.executable, "-m", "lockgate.serving", "--model-dir", str(package)]
        command += ["--host", HOST, "--port", str(port)]
        servers = [measure("lockgate", command, port, work, root / "lockgate.log")]
        if not args.skip_mlflow:
            print("logging the same model to MLflow ...", flush=True)
            uri, tracking = log_to_mlflow(root, package, bodies)
            port = free_port()
            command = [str(BIN / "mlflow"), "models", "serve", "-m", uri]
            command += ["--env-manager", "local", "-h", HOST, "-p", str(port)]
            work = dataclasses.replace(work, env={**env, **tracking})
            servers.append(measure("mlflow", command, port, work, root / "mlflow.log"))
    finally:
        tempfile.tempdir = None
        shutil.rmtree(root, ignore_errors=True)

    print(
        f"\n{args.requests} single-row {CONTENT_TYPE} requests per run, cycling through "
        f"{len(bodies)} customers; model trained on {args.rows} rows; {os.cpu_count()} CPUs "
        f"shared by the servers and the load generator (load average {load_before:.2f} before)"
    )
    print_table(servers, args.concurrency)
    target = 8 if 8 in args.concurrency else max(args.concurrency)
    print_targets(servers[0], servers[1] if len(servers) > 1 else None, target)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:  # the servers were stopped on the way out
        sys.exit("interrupted")
    except LoadTimeout as error:
        sys.exit(f"{error}; raise --timeout, or lower --requests")
