"""Drift benchmark: lockgate's drift job vs Evidently's DataDriftPreset, on the same frames.

Generates seeded frames of 20 numeric features of ten shapes (normal, skewed, heavy-tailed,
bounded, bimodal, integer counts, rounded values) -- a reference and a current frame in which
the first 10 features are shifted by 0.1 of their standard deviation -- at each of --sizes
rows (cached under bench/.work/), then runs, each in its own process, timed with its peak RSS:

* lockgate baseline: ``build_baseline`` of the reference, what the data pipeline stores;
* lockgate drift: ``data_drift`` of the current frame against that ``statistics.json``, what
  the monitoring job does (it never sees the reference rows);
* Evidently: ``Report([DataDriftPreset()]).run(current, reference)`` in its own virtualenv.

Then, over --repeats seeded repetitions at --calibration-rows rows per frame, the dataset-level
alarm rate of both with nothing shifted (false alarms), and with 10 of the 20 features shifted
by 0.1 and by 0.25 standard deviations (detections), on the same frames for both tools.

Evidently is never installed by this script; it runs from --evidently-python, a virtualenv
made once with the command EVIDENTLY_SETUP below. Usage: ``python bench/drift.py
[--sizes 100000,1000000] [--repeats 100] [--calibration-rows 20000] [--evidently-repeats N]
[--evidently-python PATH] [--skip-evidently]``
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
WORK = HERE / ".work"
FEATURES = 20
SHIFTED = 10
"""The first SHIFTED features are the shifted ones; the other ten repeat the same shapes."""
NAMES = [f"x{i:02d}" for i in range(FEATURES)]
TIMING_SHIFT = 0.1
CALIBRATION_SHIFTS = (0.0, 0.1, 0.25)
EVIDENTLY_VENV = Path(tempfile.gettempdir()) / "lockgate-bench-evidently"
EVIDENTLY_SETUP = (
    f"python3.11 -m venv {EVIDENTLY_VENV} && "
    f"{EVIDENTLY_VENV}/bin/pip install 'evidently==0.7.*' 'pandas<3'"
)
# Measured on this machine with evidently 0.7.23, for --skip-evidently runs: seconds, MB.
EVIDENTLY_REFERENCE = {100_000: (8.0, None), 1_000_000: (150.0, 1600.0)}

Draw = Callable[[np.random.Generator, int], np.ndarray]
SHAPES: tuple[Draw, ...] = (
    lambda rng, n: rng.normal(50.0, 10.0, n),
    lambda rng, n: rng.lognormal(3.0, 0.8, n),
    lambda rng, n: rng.uniform(-1.0, 1.0, n),
    lambda rng, n: rng.exponential(2.0, n),
    lambda rng, n: rng.standard_t(5, n),
    lambda rng, n: rng.gamma(2.0, 3.0, n),
    lambda rng, n: rng.beta(2.0, 5.0, n),
    lambda rng, n: np.where(rng.random(n) < 0.4, rng.normal(-2, 1, n), rng.normal(3, 1, n)),
    lambda rng, n: rng.poisson(30.0, n).astype(np.float64),
    lambda rng, n: np.round(rng.normal(0.0, 1.0, n), 1),
)


def frames(rows: int, seed: int, shift: float) -> tuple[np.ndarray, np.ndarray]:
    """(reference, current), each FEATURES x rows; the current frame's first SHIFTED
    features moved by ``shift`` times the reference's standard deviation. Only NumPy, so
    Evidently's virtualenv draws the very same frames."""
    rng = np.random.default_rng(seed)
    reference = np.empty((FEATURES, rows))
    current = np.empty((FEATURES, rows))
    for i in range(FEATURES):
        draw = SHAPES[i % len(SHAPES)]
        reference[i] = draw(rng, rows)
        current[i] = draw(rng, rows)
        if i < SHIFTED and shift:
            current[i] += shift * reference[i].std()
    return reference, current


# ---------------------------------------------------------------- lockgate's side


def lockgate_baseline(reference: np.ndarray) -> dict[str, Any]:
    """The statistics.json the data pipeline would store for ``reference``."""
    import pyarrow as pa

    from lockgate.pipelines.data.baseline import build_baseline

    target = pa.nulls(reference.shape[1], pa.int8()).fill_null(0)
    table = pa.table({**_columns(reference), "target": target})
    statistics, _ = build_baseline(
        table, dict.fromkeys(NAMES, "numeric"), "target", "classification", 20, 42, 50
    )
    return statistics


def lockgate_drift(statistics: dict[str, Any], current: np.ndarray) -> dict[str, Any]:
    """``data_drift`` of ``current``, as the JSON the monitoring report holds."""
    import pyarrow as pa

    from lockgate.config import DriftConfig
    from lockgate.pipelines.monitoring.drift import data_drift

    result = data_drift(
        statistics, pa.table(_columns(current)), dict.fromkeys(NAMES, "numeric"), DriftConfig()
    )
    return result.as_dict()


def _columns(matrix: np.ndarray) -> dict[str, Any]:
    """Each row of ``matrix`` as an Arrow column, sharing its memory. (``pa.array`` of a NumPy
    array imports pandas, which the monitoring job, reading Arrow, never does.)"""
    import pyarrow as pa

    rows = matrix.shape[1]
    return {
        name: pa.Array.from_buffers(pa.float64(), rows, [None, pa.py_buffer(matrix[i])])
        for i, name in enumerate(NAMES)
    }


def worker(kind: str, paths: list[str]) -> None:
    """One measured step in this process: ``baseline REF OUT`` or ``drift STATS CUR OUT``."""
    # Imports are the process's cost, not the step's: load them before the clock starts.
    import lockgate.pipelines.data.baseline
    import lockgate.pipelines.monitoring.drift  # noqa: F401

    if kind == "baseline":
        reference = np.load(paths[0])
        started = time.perf_counter()
        statistics = lockgate_baseline(reference)
        work = time.perf_counter() - started
        Path(paths[1]).write_text(json.dumps({"work": work, "statistics": statistics}))
        return
    statistics = json.loads(Path(paths[0]).read_text())["statistics"]
    current = np.load(paths[1])
    started = time.perf_counter()
    result = lockgate_drift(statistics, current)
    work = time.perf_counter() - started
    Path(paths[2]).write_text(json.dumps({"work": work, "share": result["share"]}))


# ---------------------------------------------------------------- measuring


@dataclass
class Step:
    """One process: wall seconds (start to exit), seconds of work inside, peak RSS in MB."""

    seconds: float
    work: float
    rss_mb: float | None
    share: float | None = None


def measured(command: list[str], result: Path, log: Path) -> Step:
    started = time.perf_counter()
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        tail = log.read_text(errors="replace")[-3000:]
        raise SystemExit(f"{' '.join(command)} failed (log {log}):\n{tail}")
    document = json.loads(result.read_text())
    return Step(seconds, document["work"], usage.ru_maxrss / 1024, document.get("share"))


def timing(rows: int, evidently: Path | None) -> dict[str, Step]:
    reference_path = WORK / f"drift-{rows}-reference.npy"
    current_path = WORK / f"drift-{rows}-current.npy"
    if not (reference_path.exists() and current_path.exists()):
        print(f"generating {rows} x {FEATURES} reference and current frames ...", flush=True)
        reference, current = frames(rows, seed=2026, shift=TIMING_SHIFT)
        np.save(reference_path, reference)
        np.save(current_path, current)
        del reference, current
    stats_path, drift_path = WORK / f"drift-{rows}-stats.json", WORK / f"drift-{rows}-out.json"
    me = [sys.executable, str(Path(__file__).resolve()), "--worker"]
    print(f"{rows} rows: lockgate baseline ...", flush=True)
    steps = {
        "lockgate baseline": measured(
            [*me, "baseline", str(reference_path), str(stats_path)],
            stats_path,
            WORK / "drift-baseline.log",
        )
    }
    print(f"{rows} rows: lockgate drift ...", flush=True)
    steps["lockgate drift"] = measured(
        [*me, "drift", str(stats_path), str(current_path), str(drift_path)],
        drift_path,
        WORK / "drift-drift.log",
    )
    if evidently is not None:
        print(f"{rows} rows: Evidently DataDriftPreset ...", flush=True)
        out = WORK / f"drift-{rows}-evidently.json"
        command = [str(evidently), str(HERE / "drift_evidently.py"), "timing"]
        command += [str(reference_path), str(current_path), str(out)]
        steps["evidently"] = measured(command, out, WORK / "drift-evidently.log")
    return steps


@dataclass
class Rates:
    """Over repetitions: how often the dataset drifted, and how often each feature did."""

    repeats: int = 0
    dataset: int = 0
    features: dict[str, int] = field(default_factory=lambda: dict.fromkeys(NAMES, 0))

    def add(self, dataset: bool, drifted: list[str]) -> None:
        self.repeats += 1
        self.dataset += dataset
        for name in drifted:
            self.features[name] += 1

    @property
    def dataset_rate(self) -> float:
        return self.dataset / self.repeats

    def feature_rate(self, shifted: bool) -> float:
        names = NAMES[:SHIFTED] if shifted else NAMES[SHIFTED:]
        return sum(self.features[name] for name in names) / (len(names) * self.repeats)


def lockgate_calibration(rows: int, repeats: int, shift: float) -> Rates:
    rates = Rates()
    for repeat in range(repeats):
        reference, current = frames(rows, seed=repeat, shift=shift)
        statistics = json.loads(json.dumps(lockgate_baseline(reference)))  # as stored
        result = lockgate_drift(statistics, current)
        rates.add(result["drifted"], result["drifted_features"])
    return rates


def evidently_calibration(evidently: Path, rows: int, repeats: int, shift: float) -> Rates:
    out = WORK / "drift-evidently-calibration.json"
    command = [str(evidently), str(HERE / "drift_evidently.py"), "calibrate"]
    command += [str(rows), str(repeats), str(shift), str(out)]
    measured(command, out, WORK / "drift-evidently.log")
    rates = Rates()
    for repeat in json.loads(out.read_text())["repeats"]:
        rates.add(repeat["drifted"], repeat["drifted_features"])
    return rates


# ---------------------------------------------------------------- report


def evidently_python(path: Path) -> Path:
    if not path.exists():
        raise SystemExit(
            f"no Evidently interpreter at {path}. Make its virtualenv once with\n  "
            f"{EVIDENTLY_SETUP}\nor run with --skip-evidently."
        )
    version = subprocess.run(
        [str(path), "-c", "import evidently; print(evidently.__version__)"],
        capture_output=True,
        text=True,
        check=False,
    )
    if version.returncode != 0:
        raise SystemExit(f"{path} cannot import evidently; reinstall with\n  {EVIDENTLY_SETUP}")
    print(f"evidently {version.stdout.strip()} from {path}")
    return path


def print_timing(results: dict[int, dict[str, Step]]) -> None:
    print(f"\n{'rows':>9}  {'step':<19}{'process s':>10}{'work s':>9}{'peak RSS MB':>13}")
    for rows, steps in results.items():
        for name, step in steps.items():
            rss = f"{step.rss_mb:>13.0f}" if step.rss_mb else f"{'-':>13}"
            print(f"{rows:>9}  {name:<19}{step.seconds:>10.2f}{step.work:>9.2f}{rss}")
    print("\n(process s: start to exit, imports and loading the frames included; work s: the")
    print(" baseline / the drift report alone. Ratios below are of process seconds.)")
    for rows, steps in results.items():
        ours, base = steps["lockgate drift"], steps["lockgate baseline"]
        theirs = steps.get("evidently")
        seconds, rss = (
            (theirs.seconds, theirs.rss_mb)
            if theirs
            else EVIDENTLY_REFERENCE.get(rows, (None, None))
        )
        source = "measured" if theirs else "Evidently as measured before (--skip-evidently)"
        if seconds is None:
            continue
        print(f"\n{rows} rows, against {source}:")
        print(f"  Evidently / lockgate drift time:              {seconds / ours.seconds:7.1f}x")
        both = seconds / (ours.seconds + base.seconds)
        target = "  (target >= 30x at 1M)" if rows >= 1_000_000 else ""
        print(f"  Evidently / lockgate (baseline + drift) time: {both:7.1f}x{target}")
        if rss and ours.rss_mb:
            print(
                f"  lockgate drift peak RSS / Evidently's:        {ours.rss_mb / rss:7.2f}"
                f"{'  (target <= 0.33)' if rows >= 1_000_000 else ''}"
            )


def print_calibration(rows: int, ours: dict[float, Rates], theirs: dict[float, Rates]) -> None:
    print(
        f"\ncalibration: {rows} rows per frame, {FEATURES} features, {SHIFTED} shifted, "
        f"seeds 0..{ours[0.0].repeats - 1} (lockgate) / "
        + (f"0..{theirs[0.0].repeats - 1} (Evidently)" if theirs else "Evidently skipped")
    )
    header = f"{'shift':>6}  {'tool':<10}{'repeats':>8}{'dataset drift':>15}"
    print(header + f"{'shifted feat.':>15}{'unshifted feat.':>17}")
    for shift in CALIBRATION_SHIFTS:
        for tool, rates in (("lockgate", ours.get(shift)), ("Evidently", theirs.get(shift))):
            if rates is None:
                continue
            print(
                f"{shift:>5}sd  {tool:<10}{rates.repeats:>8}{rates.dataset_rate:>15.1%}"
                f"{rates.feature_rate(True):>15.1%}{rates.feature_rate(False):>17.1%}"
            )
    false_alarms = ours[0.0].dataset_rate
    print(f"\nlockgate dataset false-alarm rate:         {false_alarms:6.1%}  (target <= 5%)")
    if 0.25 in ours:
        print(
            f"lockgate detection, 10 of 20 at 0.25sd:     {ours[0.25].dataset_rate:6.1%}  "
            "(target >= 95%)"
        )
    for shift in (0.1, 0.25):
        if shift in ours and shift in theirs:
            mine, other = ours[shift], theirs[shift]
            print(
                f"detection at {shift}sd, lockgate vs Evidently: dataset "
                f"{mine.dataset_rate:.1%} vs {other.dataset_rate:.1%} (target: at least "
                f"Evidently's), shifted features {mine.feature_rate(True):.1%} vs "
                f"{other.feature_rate(True):.1%}"
            )


def sizes(text: str) -> list[int]:
    values = [int(part) for part in text.split(",") if part.strip()]
    if any(value < 100 for value in values):
        raise argparse.ArgumentTypeError("sizes are row counts of at least 100, e.g. 100000")
    return values


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes", type=sizes, default=[100_000, 1_000_000], help="rows per frame to time"
    )
    parser.add_argument("--repeats", type=int, default=100, help="calibration repetitions")
    parser.add_argument("--calibration-rows", type=int, default=20_000)
    parser.add_argument(
        "--evidently-repeats", type=int, help="Evidently's repetitions (default --repeats)"
    )
    parser.add_argument("--evidently-python", type=Path, default=EVIDENTLY_VENV / "bin/python")
    parser.add_argument("--skip-evidently", action="store_true", help="time lockgate only")
    parser.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker[0], args.worker[1:])
        return

    WORK.mkdir(exist_ok=True)
    evidently = None if args.skip_evidently else evidently_python(args.evidently_python)
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")
    results = {rows: timing(rows, evidently) for rows in args.sizes}
    if results:
        print_timing(results)
    if args.repeats <= 0:
        return
    rows = args.calibration_rows
    ours: dict[float, Rates] = {}
    theirs: dict[float, Rates] = {}
    for shift in CALIBRATION_SHIFTS:
        print(f"calibration at {shift}sd: lockgate, {args.repeats} repetitions ...", flush=True)
        ours[shift] = lockgate_calibration(rows, args.repeats, shift)
        if evidently is not None:
            repeats = args.evidently_repeats or args.repeats
            print(f"calibration at {shift}sd: Evidently, {repeats} repetitions ...", flush=True)
            theirs[shift] = evidently_calibration(evidently, rows, repeats, shift)
    print_calibration(rows, ours, theirs)


if __name__ == "__main__":
    main()
