"""Upload-to-version latency of `lockgate up` (the issue asks: prepared within 1 s).

Starts `lockgate up` on a temporary project, uploads churn files of ROWS rows one at a time
through the store, and measures from the end of each upload to the moment its dataset
version's manifest is committed. Prints each latency and the median and worst.
Usage: python bench/up_latency.py [--uploads 5] [--rows 20000]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from lockgate.cli.project import render_config
from lockgate.local.file_store import FileStore
from lockgate.pipelines.data.versions import list_versions
from lockgate.sample.churn import CHURN_COLUMNS, CHURN_TARGET, write_churn_csv

BIN = Path(sys.executable).parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--uploads", type=int, default=5)
    parser.add_argument("--rows", type=int, default=20_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        project = Path(folder)
        (project / "lockgate.toml").write_text(
            render_config("churn", CHURN_TARGET, "classification", dict(CHURN_COLUMNS))
        )
        store = FileStore((project / ".lockgate" / "dev" / "store").as_uri())
        files = [
            write_churn_csv(project / f"part-{i}.csv", args.rows, seed=i)
            for i in range(args.uploads)
        ]
        up = subprocess.Popen(
            [str(BIN / "lockgate"), "up"],
            cwd=project,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        latencies = []
        try:
            time.sleep(2.0)  # let `up` start and make its first (empty) poll
            for number, path in enumerate(files, start=1):
                store.put_file(f"raw/churn/{path.name}", path)
                uploaded = time.perf_counter()
                deadline = uploaded + 60
                while len(list_versions(store, "churn")) < number:
                    if time.perf_counter() > deadline:
                        raise SystemExit(f"upload {number} was not prepared within 60 s")
                    time.sleep(0.01)
                latencies.append(time.perf_counter() - uploaded)
                print(
                    f"upload {number} ({path.stat().st_size / 1e6:.1f} MB, {number} file(s) in "
                    f"the version): prepared {latencies[-1]:.2f} s after the upload"
                )
        finally:
            up.terminate()
            up.wait(timeout=30)
    print(
        f"median {statistics.median(latencies):.2f} s, worst {max(latencies):.2f} s "
        "(target: within 1 s)"
    )


if __name__ == "__main__":
    main()
