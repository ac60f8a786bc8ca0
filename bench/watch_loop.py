"""The watcher a small team writes instead of `lockgate up`: the baseline of up_latency.py.

A loop lists the folder store's raw/ every INTERVAL seconds and, for each file it has not seen,
runs `lockgate data prep` as a fresh process, one after the other -- what a cron or inotify job
calling the CLI does. Only the standard library: that is what such a script is.
Prints one line per run: the file that started it, the exit code and how long it took.
Usage: python bench/watch_loop.py PROJECT RAW_FOLDER [--interval 0.1]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path


def prep_command() -> list[str]:
    script = Path(sys.executable).parent / "lockgate"
    return [str(script)] if script.exists() else [sys.executable, "-m", "lockgate"]


def new_files(raw: Path, seen: set[Path]) -> list[Path]:
    """Files under ``raw`` not seen before; hidden names (the store's temp files) left out."""
    if not raw.is_dir():
        return []
    return sorted(
        path
        for path in raw.rglob("*")
        if path not in seen
        and path.is_file()
        and not any(part.startswith(".") for part in path.relative_to(raw).parts)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("project", type=Path, help="folder with lockgate.toml")
    parser.add_argument("raw", type=Path, help="the store's raw/ folder")
    parser.add_argument("--interval", type=float, default=0.1)
    args = parser.parse_args()
    command = [*prep_command(), "data", "prep"]
    seen: set[Path] = set()
    print(f"watching {args.raw} every {args.interval:g}s", flush=True)
    while True:
        for path in new_files(args.raw, seen):
            seen.add(path)
            started = time.perf_counter()
            code = subprocess.run(command, cwd=args.project, check=False).returncode
            took = time.perf_counter() - started
            print(f"{path.relative_to(args.raw)}: exit {code} in {took:.2f}s", flush=True)
        time.sleep(args.interval)


if __name__ == "__main__":
    main()
