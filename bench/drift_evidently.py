"""Evidently's side of bench/drift.py, run by Evidently's own virtualenv's Python.

``timing REFERENCE.npy CURRENT.npy RESULT.json``: one DataDriftPreset report on the saved
frames; ``calibrate ROWS REPEATS SHIFT RESULT.json``: one report per seeded repetition, on the
frames bench/drift.py draws (its ``frames`` needs only NumPy). Each writes its result as JSON.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from evidently import Report
from evidently.presets import DataDriftPreset

from drift import NAMES, frames


def report(reference: np.ndarray, current: np.ndarray) -> dict[str, Any]:
    """Evidently's verdict: the share of drifted columns, whether it reaches the preset's
    drift share, and which columns drifted."""
    snapshot = Report([DataDriftPreset()]).run(
        pd.DataFrame(current.T, columns=NAMES), pd.DataFrame(reference.T, columns=NAMES)
    )
    metrics = snapshot.dict()["metrics"]
    count = next(m for m in metrics if m["metric_name"].startswith("DriftedColumnsCount"))
    drifted = []
    for metric in metrics:
        config = metric["config"]
        if not metric["metric_name"].startswith("ValueDrift("):
            continue
        # Distances drift at or above their threshold, p-values below it.
        is_p_value = "p_value" in config["method"]
        value, threshold = metric["value"], config["threshold"]
        if (value < threshold) if is_p_value else (value >= threshold):
            drifted.append(config["column"])
    share = count["value"]["share"]
    return {
        "share": share,
        "drifted": share >= count["config"]["drift_share"],
        "drifted_features": drifted,
    }


def main() -> None:
    mode, *args = sys.argv[1:]
    if mode == "timing":
        reference, current = np.load(args[0]), np.load(args[1])
        started = time.perf_counter()
        result = report(reference, current)
        result["work"] = time.perf_counter() - started
        Path(args[2]).write_text(json.dumps(result))
        return
    rows, repeats, shift = int(args[0]), int(args[1]), float(args[2])
    started = time.perf_counter()
    outcomes = [report(*frames(rows, seed=repeat, shift=shift)) for repeat in range(repeats)]
    document = {"work": time.perf_counter() - started, "repeats": outcomes}
    Path(args[3]).write_text(json.dumps(document))


if __name__ == "__main__":
    main()
