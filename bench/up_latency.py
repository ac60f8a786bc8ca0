"""Upload-to-version latency of `lockgate up`, beside the watcher a small team would write.

The baseline (bench/watch_loop.py) lists the store's raw/ every 0.1 s, the interval `up` uses
for a folder store, and runs `lockgate data prep` as a fresh process for each new file, one
after the other. Each tool gets its own temporary project (same lockgate.toml, same files);
both run for the whole benchmark and take turns, so the machine's noise hits them alike.

1. Single uploads: UPLOADS files of ROWS rows, one at a time (who goes first alternates). The
   latency runs from store.put_file returning to a committed version whose sources include the
   file (the store is polled every 20 ms). Median and worst.
2. Burst: BURST files of 200 rows put as fast as possible. The latency runs from the last put
   to a version with every file of the burst; also the data pipeline runs the burst cost (run
   records) and how long after the last put the last of them ended.

Data prep is the same code in both and kept cheap (the text column is left out: no TF-IDF), so
the difference is what surrounds it. Each tool waits until the other is idle before its turn.
Usage: python bench/up_latency.py [--uploads 5] [--rows 20000] [--burst 50]
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import FrameType

import pyarrow.csv as pacsv

from lockgate.cli.project import render_config
from lockgate.local.file_store import FileStore
from lockgate.pipelines.data.versions import read_manifest
from lockgate.pipelines.runs import RunView, recent_runs
from lockgate.sample.churn import CHURN_COLUMNS, CHURN_TARGET, generate_churn

DATASET = "churn"
COLUMNS = {name: kind for name, kind in CHURN_COLUMNS.items() if kind != "text"}
BURST_ROWS = 200
INTERVAL = 0.1
"""The watcher's listing interval: `lockgate up`'s default for a folder store."""
POLL = 0.02
QUIET = 1.0
"""Seconds without a new run (and none running) after which a tool counts as idle."""
TIMEOUT = 120.0
STOP_WAIT = 20.0
ODD = re.compile(r"traceback|error|warning|exception|\bfailed\b|interrupted", re.IGNORECASE)


class BenchError(Exception):
    pass


def lockgate_command() -> list[str]:
    script = Path(sys.executable).parent / "lockgate"
    return [str(script)] if script.exists() else [sys.executable, "-m", "lockgate"]


@dataclass
class Contender:
    """One tool under test: its project, store, process and what it printed."""

    name: str
    project: Path
    process: subprocess.Popen[bytes] | None = None
    sources: dict[Path, frozenset[str]] = field(default_factory=dict)
    """Manifest file -> keys of the raw objects its version was built from."""

    def __post_init__(self) -> None:
        self.project.mkdir(parents=True)
        (self.project / "lockgate.toml").write_text(
            render_config(DATASET, CHURN_TARGET, "classification", COLUMNS)
        )
        self.store = FileStore((self.project / ".lockgate" / "dev" / "store").as_uri())
        self.output = self.project / "output.log"

    def start(self, command: list[str]) -> None:
        environ = {**os.environ, "COLUMNS": "200", "PYTHONUNBUFFERED": "1"}
        with self.output.open("wb") as sink:
            self.process = subprocess.Popen(
                command,
                cwd=self.project,
                stdin=subprocess.DEVNULL,
                stdout=sink,
                stderr=subprocess.STDOUT,
                env=environ,
                start_new_session=True,  # its own group: stopping it stops what it started
            )

    def printed(self) -> str:
        return self.output.read_text(errors="replace") if self.output.exists() else ""

    def check_alive(self) -> None:
        assert self.process is not None
        code = self.process.poll()
        if code is not None:
            tail = "\n".join(self.printed().splitlines()[-20:])
            raise BenchError(f"{self.name} exited with code {code}; its output ends:\n{tail}")

    def wait_printed(self, text: str) -> None:
        deadline = time.monotonic() + TIMEOUT
        while text not in self.printed():
            self.check_alive()
            if time.monotonic() > deadline:
                raise BenchError(f"{self.name} did not print {text!r} within {TIMEOUT:g}s")
            time.sleep(POLL)

    def has_version_with(self, keys: frozenset[str]) -> bool:
        # A glob of the folder, not store.list: a 20 ms poll must not load the machine (a
        # listing reads every file's ETag record). A manifest is linked into place whole.
        for path in (self.store.root / "processed" / DATASET).glob("*/manifest.json"):
            if path not in self.sources:
                manifest = read_manifest(self.store, DATASET, path.parent.name)
                self.sources[path] = frozenset(source.key for source in manifest.sources)
        return any(keys <= sources for sources in self.sources.values())

    def seconds_to_version(self, keys: frozenset[str], since: float) -> float:
        """Poll every 20 ms for a version with ``keys``; seconds from ``since`` to seeing it."""
        deadline = since + TIMEOUT
        while not self.has_version_with(keys):
            now = time.perf_counter()
            if now > deadline:
                raise BenchError(
                    f"{self.name}: no version with {len(keys)} uploaded file(s) after "
                    f"{TIMEOUT:g}s (lost uploads?)"
                )
            self.check_alive()
            time.sleep(POLL)
        return time.perf_counter() - since

    def runs(self) -> list[RunView]:
        return recent_runs(self.store, "data", 100_000)

    def wait_idle(self, at_least: int) -> list[RunView]:
        """Wait until at least ``at_least`` data runs are recorded, none runs, and none started
        for QUIET seconds; the runs."""
        deadline = time.monotonic() + TIMEOUT
        count, changed = -1, time.monotonic()
        while True:
            views = self.runs()
            if len(views) != count:
                count, changed = len(views), time.monotonic()
            running = any(view.state == "running" for view in views)
            if not running and count >= at_least and time.monotonic() - changed >= QUIET:
                return views
            if time.monotonic() > deadline:
                raise BenchError(f"{self.name} still busy after {TIMEOUT:g}s ({count} runs)")
            self.check_alive()
            time.sleep(0.1)

    def stop(self) -> str | None:
        """SIGTERM its process group, SIGKILL after STOP_WAIT; what went wrong, if anything."""
        process = self.process
        if process is None:
            return None
        problem = None
        if process.poll() is None:
            with suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=STOP_WAIT)
            except subprocess.TimeoutExpired:
                problem = f"did not stop within {STOP_WAIT:g}s of SIGTERM: killed"
                with suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        with suppress(ProcessLookupError):  # what it started and left behind
            os.killpg(process.pid, signal.SIGKILL)
        return problem


def write_files(folder: Path, prefix: str, count: int, rows: int, seed: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(count):
        table = generate_churn(rows, seed=seed + index).drop_columns(["last_ticket_text"])
        path = folder / f"{prefix}-{index:03d}.csv"
        pacsv.write_csv(table, str(path))
        paths.append(path)
    return paths


def key(path: Path) -> str:
    return f"raw/{DATASET}/{path.name}"


def wall(stamp: object) -> float:
    return datetime.fromisoformat(str(stamp)).timestamp()


@dataclass
class Burst:
    seconds: float
    """From the last put to a version with every file of the burst."""
    put_seconds: float
    runs: list[RunView]
    busy_after: float
    """From the last put to the end of the burst's last run."""


def single(tool: Contender, path: Path, before: int) -> float:
    tool.store.put_file(key(path), path)
    uploaded = time.perf_counter()
    seconds = tool.seconds_to_version(frozenset([key(path)]), uploaded)
    tool.wait_idle(before + 1)
    return seconds


def burst(tool: Contender, paths: list[Path], at_least: int) -> Burst:
    before = len(tool.runs())
    first = time.perf_counter()
    for path in paths:
        tool.store.put_file(key(path), path)
    uploaded = time.perf_counter()
    uploaded_wall = time.time()
    seconds = tool.seconds_to_version(frozenset(key(path) for path in paths), uploaded)
    runs = tool.wait_idle(before + at_least)[before:]
    ended = max(wall(view.record.get("ended") or view.record["started"]) for view in runs)
    return Burst(seconds, uploaded - first, runs, ended - uploaded_wall)


def ready(up: Contender, watcher: Contender, folder: Path) -> None:
    """Wait until both tools react to an upload (a file outside the dataset: `up` ignores it,
    the watcher runs a prep that finds no file), so neither is measured while starting."""
    probe = folder / "ready.csv"
    probe.write_text("x\n1\n")
    for tool in (up, watcher):
        tool.store.put_file("raw/probe/ready.csv", probe)
    up.wait_printed("ignored raw/probe/ready.csv")
    watcher.wait_printed("probe/ready.csv: exit")
    for tool in (up, watcher):
        tool.store.delete("raw/probe/ready.csv")


def statuses(runs: list[RunView]) -> str:
    counts = Counter(
        str((view.record.get("outputs") or {}).get("status") or view.state) for view in runs
    )
    return ", ".join(f"{count} {status}" for status, count in counts.most_common())


def report(
    args: argparse.Namespace,
    latencies: dict[str, list[float]],
    bursts: dict[str, Burst],
) -> None:
    up_times, watch_times = latencies["up"], latencies["watcher"]
    up_burst, watch_burst = bursts["up"], bursts["watcher"]

    def seconds(value: float) -> str:
        return f"{value:.2f} s"

    rows = [
        (
            f"single upload ({args.rows} rows), median of {args.uploads}",
            seconds(statistics.median(up_times)),
            seconds(statistics.median(watch_times)),
            statistics.median(watch_times) / statistics.median(up_times),
        ),
        (
            f"single upload ({args.rows} rows), worst of {args.uploads}",
            seconds(max(up_times)),
            seconds(max(watch_times)),
            max(watch_times) / max(up_times),
        ),
        (
            f"burst of {args.burst} x {BURST_ROWS} rows: last put -> all in a version",
            seconds(up_burst.seconds),
            seconds(watch_burst.seconds),
            watch_burst.seconds / up_burst.seconds,
        ),
        (
            "burst: data pipeline runs",
            str(len(up_burst.runs)),
            str(len(watch_burst.runs)),
            len(watch_burst.runs) / len(up_burst.runs),
        ),
        (
            "burst: last put -> last run ended",
            seconds(up_burst.busy_after),
            seconds(watch_burst.busy_after),
            watch_burst.busy_after / up_burst.busy_after,
        ),
    ]
    header = ("scenario", "lockgate up", "hand-rolled watcher", "watcher / up")
    width = max(len(row[0]) for row in rows)
    print()
    print(f"{header[0]:<{width}}  {header[1]:>11}  {header[2]:>19}  {header[3]:>12}")
    for name, up_text, watch_text, ratio in rows:
        print(f"{name:<{width}}  {up_text:>11}  {watch_text:>19}  {ratio:>11.1f}x")
    print(
        f"burst runs: lockgate up {statuses(up_burst.runs)}; watcher {statuses(watch_burst.runs)}"
    )
    print(
        f"burst puts took {up_burst.put_seconds:.2f} s (up) and "
        f"{watch_burst.put_seconds:.2f} s (watcher); singles (up / watcher): "
        + ", ".join(f"{a:.2f}/{b:.2f}" for a, b in zip(up_times, watch_times, strict=True))
    )


def odd_output(tool: Contender) -> list[str]:
    """Lines of the tool's output that look like trouble, and runs that did not succeed."""
    found = [line for line in tool.printed().splitlines() if ODD.search(line)]
    for view in tool.runs():
        inputs = view.record.get("inputs") or {}
        if view.state != "succeeded" and inputs.get("raw_objects"):
            found.append(f"run {view.run_id}: {view.state}: {view.record.get('error')}")
    return found


def run(args: argparse.Namespace, folder: Path) -> None:
    started = time.perf_counter()
    singles = write_files(folder / "files", "part", args.uploads, args.rows, seed=1)
    bursts_files = write_files(folder / "files", "burst", args.burst, BURST_ROWS, seed=1000)
    up = Contender("lockgate up", folder / "up")
    watcher = Contender("watcher", folder / "watcher")
    tools = {"up": up, "watcher": watcher}
    problems: list[str] = []
    try:
        up.start([*lockgate_command(), "up"])
        watcher.start(
            [
                sys.executable,
                str(Path(__file__).with_name("watch_loop.py")),
                str(watcher.project),
                str(watcher.store.root / "raw"),
                "--interval",
                str(INTERVAL),
            ]
        )
        ready(up, watcher, folder)
        print(f"both ready after {time.perf_counter() - started:.1f} s (files written, started)")
        latencies: dict[str, list[float]] = {"up": [], "watcher": []}
        for number, path in enumerate(singles, start=1):
            order = ["up", "watcher"] if number % 2 else ["watcher", "up"]
            for name in order:
                tool = tools[name]
                before = len(tool.runs())
                latencies[name].append(single(tool, path, before))
            print(
                f"upload {number}/{args.uploads} ({path.stat().st_size / 1e6:.1f} MB): "
                f"lockgate up {latencies['up'][-1]:.2f} s, watcher {latencies['watcher'][-1]:.2f} s"
            )
        results = {
            # The watcher runs one prep per new file, by design: idle means all of them ran.
            "up": burst(up, bursts_files, 1),
            "watcher": burst(watcher, bursts_files, len(bursts_files)),
        }
        for name, result in results.items():
            print(
                f"burst: {tools[name].name} had all {args.burst} files in a version "
                f"{result.seconds:.2f} s after the last put, in {len(result.runs)} run(s)"
            )
        report(args, latencies, results)
    finally:
        for tool in (up, watcher):
            problem = tool.stop()
            if problem:
                problems.append(f"{tool.name} {problem}")
    for tool in (up, watcher):
        for line in odd_output(tool):
            problems.append(f"{tool.name}: {line.strip()}")
    print(f"total {time.perf_counter() - started:.0f} s")
    if problems:
        print(f"{len(problems)} odd line(s) in the tools' output and runs:")
        for line in problems[:40]:
            print(f"  {line}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--uploads", type=int, default=5)
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--burst", type=int, default=50)
    args = parser.parse_args()
    if min(args.uploads, args.rows, args.burst) < 1:
        parser.error("--uploads, --rows and --burst must be at least 1")

    def terminated(signum: int, _frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)  # unwinds through run()'s finally: the tools stop

    signal.signal(signal.SIGTERM, terminated)
    with tempfile.TemporaryDirectory(prefix="lockgate-up-bench-") as folder:
        try:
            run(args, Path(folder))
        except BenchError as exc:
            raise SystemExit(f"benchmark failed: {exc}") from None


if __name__ == "__main__":
    main()
