"""One trial as a SageMaker training container: the same entrypoint locally and on AWS.

Paths follow sagemaker-training-toolkit: each ``SM_*`` variable wins, else the toolkit's
default under ``SAGEMAKER_BASE_DIR`` (default ``/opt/ml``):

| what | variable | default |
|---|---|---|
| fitted model and metrics (written) | ``SM_MODEL_DIR`` | ``/opt/ml/model`` |
| ``hyperparameters.json`` (read) | ``SM_INPUT_CONFIG_DIR`` | ``/opt/ml/input/config`` |
| training split (read) | ``SM_CHANNEL_TRAIN`` | ``/opt/ml/input/data/train`` |
| validation split (read) | ``SM_CHANNEL_VALIDATION`` | ``/opt/ml/input/data/validation`` |
| ``failure`` reason (written on error) | ``SM_OUTPUT_DIR`` | ``/opt/ml/output`` |
| ``metrics.json`` again (written) | ``SM_OUTPUT_DATA_DIR`` | ``/opt/ml/output/data`` |

Hyperparameters come from ``SM_HPS`` when it is set, else from ``hyperparameters.json``. The
toolkit reads the file itself and exports ``SM_HPS`` to the program it launches (the same
hyperparameters, each value JSON-decoded where it parses, ``sagemaker_*`` keys left out), so
both describe the same job; a value ``SM_HPS`` decoded (``0.1``, ``["no", "yes"]``) is turned
back into its JSON text. Each channel folder holds one ``*.safetensors`` file with tensors
``X`` (float32, rows x features) and ``y`` (int64 class index, or float32 for regression).
Command-line arguments are ignored (SageMaker passes ``train``; script mode repeats the
hyperparameters as flags).

Hyperparameters (all strings):

| key | value | when absent |
|---|---|---|
| ``family`` | a model family, e.g. ``random_forest`` | refused |
| ``<family>.<param>`` | e.g. ``random_forest.max_depth`` = ``"12"`` | the family's default |
| ``lockgate.task`` | ``classification`` or ``regression`` | refused |
| ``lockgate.metric`` | the validation metric, e.g. ``roc_auc`` | roc_auc / rmse |
| ``lockgate.seed`` | integer seed of the model | 42 |
| ``lockgate.classes`` | JSON list of class labels, in index order | ``"0"``..``"k-1"`` |

:func:`trial_hyperparameters` builds this dictionary for a trial.

Outcomes:

- **completed** (exit 0): ``model.pkl`` (the pickled fitted model, with ``predict`` and for
  classification ``predict_proba``) and ``metrics.json`` in the model folder. ``metrics.json``
  goes to the output data folder too: SageMaker uploads that folder as the job's small
  ``output.tar.gz``, which is where lockgate reads a training job's metric from (never from
  its logs).
- **pruned** (exit 0): only with an in-process ``report`` callback. Pruning is a decision of
  the study, not a failure: SageMaker would mark a non-zero exit Failed and show the failure
  file as its FailureReason, so neither is written. ``metrics.json`` says
  ``"status": "pruned"`` with ``pruned_at_step`` and the history; there is no ``model.pkl``.
- **failed** (exit 1): ``<output>/failure`` holds one paragraph, ``ExceptionType: message``
  (SageMaker shows its first 1024 characters as the job's FailureReason); the same line goes
  to stderr, after the traceback when the error is not one of lockgate's own.
"""

from __future__ import annotations

import json
import os
import pickle
import sys
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from lockgate.errors import ConfigError, LockgateError
from lockgate.pipelines.training.families import (
    FAMILIES,
    ParamValue,
    Report,
    TrialPruned,
    evaluate,
)
from lockgate.pipelines.training.metrics import default_metric, validate_metric, validate_task
from lockgate.pipelines.training.space import FAMILY, SearchSpace, split_params

HP_TASK = "lockgate.task"
HP_METRIC = "lockgate.metric"
HP_SEED = "lockgate.seed"
HP_CLASSES = "lockgate.classes"
DEFAULT_SEED = 42
CHANNELS = ("train", "validation")
MODEL_FILE = "model.pkl"
METRICS_FILE = "metrics.json"
FAILURE_FILE = "failure"
HYPERPARAMETERS_FILE = "hyperparameters.json"


@dataclass(frozen=True)
class ContainerPaths:
    """Where a training container reads and writes (see the module docstring).

    Attributes:
        model_dir: receives ``model.pkl`` and ``metrics.json``.
        input_config_dir: holds ``hyperparameters.json``.
        channels: channel name -> folder, for ``train`` and ``validation``.
        output_dir: receives ``failure`` on error.
        output_data_dir: receives a copy of ``metrics.json`` (SageMaker's ``output.tar.gz``).
        hps: the ``SM_HPS`` JSON, which replaces ``hyperparameters.json`` when set.
    """

    model_dir: Path
    input_config_dir: Path
    channels: Mapping[str, Path]
    output_dir: Path
    output_data_dir: Path
    hps: str | None = None

    @property
    def failure_file(self) -> Path:
        return self.output_dir / FAILURE_FILE

    @property
    def hyperparameters_file(self) -> Path:
        return self.input_config_dir / HYPERPARAMETERS_FILE

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ContainerPaths:
        """Paths from ``SM_*`` variables, with sagemaker-training-toolkit's defaults."""
        env = os.environ if environ is None else environ
        base = Path(env.get("SAGEMAKER_BASE_DIR") or "/opt/ml")
        output = Path(env.get("SM_OUTPUT_DIR") or base / "output")
        return cls(
            model_dir=Path(env.get("SM_MODEL_DIR") or base / "model"),
            input_config_dir=Path(env.get("SM_INPUT_CONFIG_DIR") or base / "input" / "config"),
            channels={
                name: Path(env.get(f"SM_CHANNEL_{name.upper()}") or base / "input" / "data" / name)
                for name in CHANNELS
            },
            output_dir=output,
            output_data_dir=Path(env.get("SM_OUTPUT_DATA_DIR") or output / "data"),
            hps=env.get("SM_HPS") or None,
        )


@dataclass
class TrialOutcome:
    """What one run of the container did.

    Attributes:
        status: ``completed``, ``pruned`` or ``failed``.
        params: the trial parameters (``family`` and ``<family>.<param>``) when they parsed.
        metric: the validation metric's name, once known.
        value: the metric on validation (completed trials).
        seconds: training time.
        history: the validation metric per step.
        pruned_at_step: the step a pruned trial stopped at.
        reason: ``ExceptionType: message`` for a failed trial.
    """

    status: Literal["completed", "pruned", "failed"]
    params: dict[str, ParamValue] = field(default_factory=dict)
    metric: str | None = None
    value: float | None = None
    seconds: float = 0.0
    history: list[dict[str, float]] = field(default_factory=list)
    pruned_at_step: int | None = None
    reason: str | None = None

    @property
    def exit_code(self) -> int:
        """0 unless the trial failed (pruning is not a failure)."""
        return 1 if self.status == "failed" else 0


def trial_hyperparameters(
    space: SearchSpace,
    params: Mapping[str, ParamValue],
    metric: str,
    seed: int,
    classes: Sequence[str] | None = None,
) -> dict[str, str]:
    """The hyperparameters that make the container train the trial ``params``."""
    hyperparameters = space.to_hyperparameters(params)
    hyperparameters[HP_TASK] = space.task
    hyperparameters[HP_METRIC] = metric
    hyperparameters[HP_SEED] = str(seed)
    if classes is not None:
        hyperparameters[HP_CLASSES] = json.dumps(list(classes))
    return hyperparameters


def read_hyperparameters(paths: ContainerPaths) -> dict[str, str]:
    """The job's hyperparameters as strings: ``SM_HPS`` if set, else hyperparameters.json.

    Raises:
        ConfigError: neither is present, or it is not a JSON object.
    """
    if paths.hps is not None:
        source, text = "SM_HPS", paths.hps
    elif paths.hyperparameters_file.is_file():
        source = str(paths.hyperparameters_file)
        text = paths.hyperparameters_file.read_text(encoding="utf-8")
    else:
        raise ConfigError(
            f"no hyperparameters: SM_HPS is not set and {paths.hyperparameters_file} does not "
            "exist; give the trial's hyperparameters in one of them"
        )
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{source} is not valid JSON: {exc}") from None
    if not isinstance(document, dict):
        raise ConfigError(f"{source} must hold a JSON object of hyperparameters")
    return {
        str(key): value if isinstance(value, str) else json.dumps(value)
        for key, value in document.items()
    }


def read_channel(paths: ContainerPaths, channel: str) -> tuple[np.ndarray, np.ndarray]:
    """``(X, y)`` from the one safetensors file in a channel folder.

    Raises:
        ConfigError: the folder is missing, holds no or several files, the file is damaged,
            or it lacks ``X``/``y`` of matching rows.
    """
    from lockgate.pipelines.data.tensors import read_safetensors

    folder = paths.channels[channel]
    files = sorted(folder.glob("*.safetensors")) if folder.is_dir() else []
    if len(files) != 1:
        found = "none" if not files else ", ".join(path.name for path in files)
        raise ConfigError(
            f"channel '{channel}' at {folder} must hold exactly one .safetensors file "
            f"(found: {found})"
        )
    try:
        tensors = read_safetensors(files[0])
    except Exception as exc:  # safetensors raises its own error types for a damaged file
        raise ConfigError(f"{files[0]} is not a readable safetensors file: {exc}") from None
    if "X" not in tensors or "y" not in tensors:
        raise ConfigError(f"{files[0]} must hold tensors 'X' and 'y' (has: {sorted(tensors)})")
    X, y = tensors["X"], tensors["y"]
    if X.ndim != 2 or y.ndim != 1 or len(X) != len(y) or len(X) == 0:
        raise ConfigError(
            f"{files[0]}: X must be (rows, features) and y (rows,) with rows > 0; "
            f"got X{X.shape} and y{y.shape}"
        )
    return X, y


def run(paths: ContainerPaths, report: Report | None = None) -> TrialOutcome:
    """Train the trial the hyperparameters describe; write its model, metrics or failure.

    Never raises for a trial's own problem: a failure is written to the failure file and
    returned as a ``failed`` outcome.

    Args:
        paths: where to read and write.
        report: called after each step of an iterative family; True prunes the trial.
    """
    # A rerun in the same tree must not leave an earlier run's result looking like its own.
    stale_files = (
        paths.failure_file,
        paths.model_dir / MODEL_FILE,
        paths.model_dir / METRICS_FILE,
        paths.output_data_dir / METRICS_FILE,
    )
    for stale in stale_files:
        stale.unlink(missing_ok=True)
    outcome = TrialOutcome("failed")
    try:
        _train(paths, report, outcome)
    except TrialPruned as pruned:
        outcome.status = "pruned"
        outcome.pruned_at_step = pruned.step
        outcome.history = pruned.history
        outcome.seconds = pruned.history[-1]["seconds"] if pruned.history else 0.0
        _write_metrics(paths, outcome)
    except Exception as exc:
        outcome.status = "failed"
        outcome.reason = _reason(exc)
        if not isinstance(exc, LockgateError):
            traceback.print_exc(file=sys.stderr)
        _write_failure(paths, outcome.reason)
    return outcome


def _train(paths: ContainerPaths, report: Report | None, outcome: TrialOutcome) -> None:
    hyperparameters = read_hyperparameters(paths)
    task = hyperparameters.get(HP_TASK)
    if task is None:
        raise ConfigError(
            f"hyperparameter '{HP_TASK}' is missing; set it to classification or regression"
        )
    validate_task(task)
    metric = hyperparameters.get(HP_METRIC) or default_metric(task)
    validate_metric(metric, task)
    outcome.metric = metric
    seed = _seed(hyperparameters.get(HP_SEED))
    family = hyperparameters.get(FAMILY)
    if family is None:
        raise ConfigError(f"hyperparameter '{FAMILY}' is missing; name the model family to train")
    space = SearchSpace.for_family(family, task)
    outcome.params = space.from_hyperparameters(hyperparameters)
    _, params = split_params(outcome.params)

    X_train, y_train = read_channel(paths, "train")
    X_val, y_val = read_channel(paths, "validation")
    if X_train.shape[1] != X_val.shape[1]:
        raise ConfigError(
            f"train has {X_train.shape[1]} features but validation has {X_val.shape[1]}"
        )
    classes = None
    if task == "classification":
        classes = _classes(hyperparameters.get(HP_CLASSES), y_train, y_val)

    result = FAMILIES[family].fit(
        params, task, seed, X_train, y_train, X_val, y_val, metric, classes, report
    )
    outcome.history = result.history
    outcome.seconds = result.seconds
    outcome.value = evaluate(result.model, X_val, y_val, metric, task, classes)
    paths.model_dir.mkdir(parents=True, exist_ok=True)
    _write_atomic(
        paths.model_dir / MODEL_FILE, pickle.dumps(result.model, protocol=pickle.HIGHEST_PROTOCOL)
    )
    outcome.status = "completed"
    _write_metrics(paths, outcome)


def _seed(text: str | None) -> int:
    if text is None:
        return DEFAULT_SEED
    try:
        return int(text)
    except ValueError:
        raise ConfigError(f"hyperparameter '{HP_SEED}' must be an integer, got '{text}'") from None


def _classes(text: str | None, y_train: np.ndarray, y_val: np.ndarray) -> list[str]:
    if np.issubdtype(y_train.dtype, np.floating) or np.issubdtype(y_val.dtype, np.floating):
        raise ConfigError("classification needs y as integer class indices, got floats")
    if text is None:
        highest = int(max(y_train.max(), y_val.max()))
        classes = [str(index) for index in range(max(highest + 1, 2))]
    else:
        try:
            parsed: Any = json.loads(text)
        except json.JSONDecodeError:
            parsed = None
        if not isinstance(parsed, list) or len(parsed) < 2:
            raise ConfigError(
                f"hyperparameter '{HP_CLASSES}' must be a JSON list of at least two class "
                f"labels, got '{text}'"
            )
        classes = [str(label) for label in parsed]
    for split, y in (("train", y_train), ("validation", y_val)):
        bad = y[(y < 0) | (y >= len(classes))]
        if len(bad):
            raise ConfigError(
                f"{split} has class index {int(bad[0])}, outside the {len(classes)} classes "
                f"of '{HP_CLASSES}'"
            )
    return classes


def _reason(exc: BaseException) -> str:
    message = " ".join(str(exc).split()) or "no message"
    return f"{type(exc).__name__}: {message}"


def _write_failure(paths: ContainerPaths, reason: str) -> None:
    print(reason, file=sys.stderr)
    try:
        paths.output_dir.mkdir(parents=True, exist_ok=True)
        paths.failure_file.write_text(reason + "\n", encoding="utf-8")
    except OSError as exc:  # the reason is on stderr already; say why the file is missing
        print(f"could not write {paths.failure_file}: {exc}", file=sys.stderr)


def _write_metrics(paths: ContainerPaths, outcome: TrialOutcome) -> None:
    document: dict[str, Any] = {"status": outcome.status}
    if outcome.metric is not None and outcome.value is not None:
        document[outcome.metric] = outcome.value
    if outcome.pruned_at_step is not None:
        document["pruned_at_step"] = outcome.pruned_at_step
    document["seconds"] = outcome.seconds
    document["history"] = outcome.history
    data = (json.dumps(document, indent=2) + "\n").encode()
    for folder in (paths.model_dir, paths.output_data_dir):
        folder.mkdir(parents=True, exist_ok=True)
        _write_atomic(folder / METRICS_FILE, data)


def _write_atomic(path: Path, data: bytes) -> None:
    """Write via a temporary sibling and rename, so a reader never sees half a file."""
    temporary = path.with_name(f".{path.name}.tmp")
    try:
        temporary.write_bytes(data)
        temporary.replace(path)
    finally:
        temporary.unlink(missing_ok=True)  # SageMaker would upload a leftover with the model


def main(argv: Sequence[str] | None = None) -> int:
    """Run the trial the environment describes; returns the process exit code.

    Args:
        argv: ignored (SageMaker passes ``train``); accepted so this works as a console script.
    """
    # No report callback in a container of its own: nothing can prune it, so it completes
    # or fails.
    return run(ContainerPaths.from_env()).exit_code


if __name__ == "__main__":
    raise SystemExit(main())
