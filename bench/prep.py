"""Data-preparation benchmark: lockgate vs bare pyarrow vs a naive pandas + scikit-learn script.

Generates a seeded ~200 MB CSV of numeric and categorical columns (once; cached under
bench/.work/), then runs, each in its own process on the same file:

* ``pyarrow.csv.read_csv`` alone: the practical throughput limit of reading the file;
* ``lockgate data prep``: validation, split, fitted transformer, tensors, baseline, manifest;
* a naive script doing the same preparation the usual way (pandas, ColumnTransformer,
  train_test_split, safetensors).

and prints seconds, MB/s and peak RSS of each, and the ratios the targets are stated in.
Also times ``lockgate --help``. Usage: ``python bench/prep.py [--mb 200] [--repeat 1]``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

HERE = Path(__file__).resolve().parent
WORK = HERE / ".work"
BIN = Path(sys.executable).parent
NUMERIC = 12
CATEGORIES = {"plan": 4, "region": 12, "channel": 6, "device": 30}

NAIVE = HERE / "naive_prep.py"
READ_ONLY = "import sys, pyarrow.csv as c; t = c.read_csv(sys.argv[1]); print(t.num_rows)"


def generate(path: Path, megabytes: int, seed: int = 2026) -> None:
    """A CSV of about ``megabytes`` MB: NUMERIC float columns (1% nulls), CATEGORIES, target."""
    rng = np.random.default_rng(seed)
    rows = int(megabytes * 1e6 / 118)
    columns: dict[str, pa.Array] = {}
    signal = np.zeros(rows)
    for i in range(NUMERIC):
        values = np.round(rng.normal(50 + i, 10 + i, rows), 3)
        signal += values * (0.02 if i % 2 else -0.015)
        mask = rng.random(rows) < 0.01
        columns[f"x{i}"] = pa.array(values, mask=mask)
    for name, count in CATEGORIES.items():
        weights = rng.dirichlet(np.ones(count))
        codes = rng.choice(count, size=rows, p=weights)
        signal += (codes % 3) * 0.2
        columns[name] = pa.DictionaryArray.from_arrays(
            pa.array(codes.astype(np.int32)), pa.array([f"{name}_{j}" for j in range(count)])
        ).cast(pa.string())
    probability = 1 / (1 + np.exp(-(signal - signal.mean()) / signal.std()))
    columns["target"] = pa.array((rng.random(rows) < probability).astype(np.int8))
    tmp = path.with_suffix(".tmp")
    pacsv.write_csv(pa.table(columns), tmp)
    tmp.rename(path)


def run_measured(command: list[str], cwd: Path) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of one child process."""
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        error = process.stderr.read().decode() if process.stderr else ""
        raise SystemExit(f"{' '.join(command)} failed:\n{error}")
    return seconds, usage.ru_maxrss / 1024


def lockgate_project(csv: Path) -> Path:
    project = WORK / "project"
    shutil.rmtree(project, ignore_errors=True)
    project.mkdir(parents=True)
    columns = {f"x{i}": "numeric" for i in range(NUMERIC)}
    columns.update(dict.fromkeys(CATEGORIES, "categorical"))
    body = ", ".join(f'{name} = "{kind}"' for name, kind in columns.items())
    (project / "lockgate.toml").write_text(
        f'[datasets.bench]\ntarget = "target"\ncolumns = {{ {body} }}\n', encoding="utf-8"
    )
    subprocess.run(
        [str(BIN / "lockgate"), "put", str(csv), "--dataset", "bench"],
        cwd=project,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return project


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=200, help="size of the generated CSV")
    parser.add_argument("--repeat", type=int, default=1, help="runs per tool (median kept)")
    args = parser.parse_args()

    WORK.mkdir(exist_ok=True)
    csv = WORK / f"mixed-{args.mb}mb-seed2026.csv"
    if not csv.exists():
        print(f"generating {csv.name} ...", flush=True)
        generate(csv, args.mb)
    size_mb = csv.stat().st_size / 1e6
    print(f"file: {csv} ({size_mb:.0f} MB)")

    results: dict[str, tuple[float, float]] = {}
    for name in ("pyarrow read_csv", "lockgate data prep", "naive pandas+sklearn"):
        runs = []
        for _ in range(args.repeat):
            if name == "pyarrow read_csv":
                runs.append(run_measured([sys.executable, "-c", READ_ONLY, str(csv)], WORK))
            elif name == "lockgate data prep":
                project = lockgate_project(csv)
                runs.append(run_measured([str(BIN / "lockgate"), "data", "prep"], project))
            else:
                out = WORK / "naive"
                shutil.rmtree(out, ignore_errors=True)
                out.mkdir()
                numeric = ",".join(f"x{i}" for i in range(NUMERIC))
                command = [sys.executable, str(NAIVE), str(csv), str(out), numeric]
                command.append(",".join(CATEGORIES))
                runs.append(run_measured(command, WORK))
        results[name] = (statistics.median(r[0] for r in runs), max(r[1] for r in runs))

    print(f"\n{'tool':<24}{'seconds':>10}{'MB/s':>10}{'peak RSS MB':>14}{'RSS / file':>12}")
    for name, (seconds, rss) in results.items():
        row = f"{name:<24}{seconds:>10.2f}{size_mb / seconds:>10.1f}"
        print(f"{row}{rss:>14.0f}{rss / size_mb:>12.2f}")
    arrow, ours, naive = (results[n][0] for n in results)
    print(f"\nlockgate throughput / pyarrow read throughput: {arrow / ours:.2f}  (target >= 0.33)")
    print(f"naive script time / lockgate time:            {naive / ours:.2f}  (target >= 3)")
    ours_rss = results["lockgate data prep"][1] / size_mb
    print(f"lockgate peak RSS / file size:                {ours_rss:.2f}  (target < 3)")

    helps = []
    for _ in range(5):
        started = time.perf_counter()
        subprocess.run([str(BIN / "lockgate"), "--help"], check=True, stdout=subprocess.DEVNULL)
        helps.append(time.perf_counter() - started)
    median = statistics.median(helps)
    print(f"lockgate --help wall time (median of 5):       {median:.3f} s  (target < 0.3)")


if __name__ == "__main__":
    main()
