"""The SageMaker training-container contract, against a fake /opt/ml tree."""

from __future__ import annotations

import dataclasses
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pytest

from lockgate.config import TrainConfig
from lockgate.pipelines.data.tensors import write_safetensors
from lockgate.pipelines.training.entrypoint import (
    ContainerPaths,
    main,
    run,
    trial_hyperparameters,
)
from lockgate.pipelines.training.families import FAMILIES
from lockgate.pipelines.training.metrics import score
from lockgate.pipelines.training.space import SearchSpace

from .conftest import Splits

CLASSES = ["stays", "churns"]
HYPERPARAMETERS = {
    "family": "hist_gradient_boosting",
    "hist_gradient_boosting.max_iter": "30",
    "hist_gradient_boosting.learning_rate": "0.1",
    "lockgate.task": "classification",
    "lockgate.metric": "roc_auc",
    "lockgate.seed": "3",
    "lockgate.classes": json.dumps(CLASSES),
}


def build_tree(base: Path, data: Splits, hyperparameters: dict[str, str]) -> Path:
    """An /opt/ml tree as SageMaker lays it out before starting the container."""
    config = base / "input" / "config"
    config.mkdir(parents=True)
    (config / "hyperparameters.json").write_text(json.dumps(hyperparameters))
    for channel, X, y in (
        ("train", data.X_train, data.y_train),
        ("validation", data.X_val, data.y_val),
    ):
        folder = base / "input" / "data" / channel
        folder.mkdir(parents=True)
        write_safetensors(folder / f"{channel}.safetensors", {"X": X, "y": y})
    return base


def sm_environment(base: Path) -> dict[str, str]:
    """The SM_* variables sagemaker-training-toolkit would export for ``base``."""
    return {
        "SM_MODEL_DIR": str(base / "model"),
        "SM_INPUT_CONFIG_DIR": str(base / "input" / "config"),
        "SM_CHANNEL_TRAIN": str(base / "input" / "data" / "train"),
        "SM_CHANNEL_VALIDATION": str(base / "input" / "data" / "validation"),
        "SM_OUTPUT_DIR": str(base / "output"),
        "SM_OUTPUT_DATA_DIR": str(base / "output" / "data"),
    }


@pytest.fixture
def opt_ml(tmp_path: Path, binary: Splits, monkeypatch: pytest.MonkeyPatch) -> Path:
    base = build_tree(tmp_path / "opt" / "ml", binary, HYPERPARAMETERS)
    monkeypatch.delenv("SM_HPS", raising=False)
    monkeypatch.delenv("SAGEMAKER_BASE_DIR", raising=False)
    for name, value in sm_environment(base).items():
        monkeypatch.setenv(name, value)
    return base


def set_hyperparameters(base: Path, **changes: str) -> None:
    path = base / "input" / "config" / "hyperparameters.json"
    path.write_text(json.dumps({**HYPERPARAMETERS, **changes}))


def test_a_trial_writes_a_model_that_unpickles_and_predicts(opt_ml: Path, binary: Splits) -> None:
    assert main() == 0
    model = pickle.loads((opt_ml / "model" / "model.pkl").read_bytes())  # noqa: S301
    metrics = json.loads((opt_ml / "model" / "metrics.json").read_text())
    proba = model.predict_proba(binary.X_val)
    assert metrics["roc_auc"] == pytest.approx(score("roc_auc", binary.y_val, proba, CLASSES))
    assert metrics["roc_auc"] > 0.8
    assert metrics["status"] == "completed"
    assert metrics["seconds"] > 0
    assert [entry["step"] for entry in metrics["history"]] == [1, 2, 3, 4, 5]
    assert metrics["history"][-1]["max_iter"] == 30
    assert set(model.predict(binary.X_val)) <= {0, 1}
    assert not (opt_ml / "output" / "failure").exists()
    # The same metrics in the output data folder: SageMaker's output.tar.gz, which the
    # SageMaker launcher reads a job's metric from.
    assert json.loads((opt_ml / "output" / "data" / "metrics.json").read_text()) == metrics


def test_the_same_hyperparameters_train_the_same_model(opt_ml: Path) -> None:
    assert main() == 0
    first = json.loads((opt_ml / "model" / "metrics.json").read_text())
    assert main() == 0
    second = json.loads((opt_ml / "model" / "metrics.json").read_text())
    assert first["roc_auc"] == second["roc_auc"]


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        (
            {"family": "xgboost"},
            "ConfigError: hyperparameter family: unknown model family 'xgboost'; for "
            "classification choose from: logistic, hist_gradient_boosting, random_forest, mlp",
        ),
        (
            {"hist_gradient_boosting.learning_rate": "abc"},
            "ConfigError: hyperparameter 'hist_gradient_boosting.learning_rate' must be a "
            "number, got 'abc'",
        ),
        (
            {"lockgate.metric": "rmse"},
            "ConfigError: metric 'rmse' is not valid for classification; choose one of: "
            "roc_auc, f1, log_loss, accuracy",
        ),
        (
            {"lockgate.classes": '["only-one"]'},
            "ConfigError: hyperparameter 'lockgate.classes' must be a JSON list of at least "
            "two class labels, got '[\"only-one\"]'",
        ),
        (
            {"lockgate.seed": "seven"},
            "ConfigError: hyperparameter 'lockgate.seed' must be an integer, got 'seven'",
        ),
    ],
)
def test_a_bad_hyperparameter_fails_with_a_clear_reason(
    opt_ml: Path, changes: dict[str, str], reason: str, capsys: pytest.CaptureFixture[str]
) -> None:
    set_hyperparameters(opt_ml, **changes)
    assert main() == 1
    assert (opt_ml / "output" / "failure").read_text() == reason + "\n"
    assert capsys.readouterr().err == reason + "\n"  # the reason, and no traceback
    assert not (opt_ml / "model" / "model.pkl").exists()


def rewrite_channel(base: Path, channel: str, **tensors: np.ndarray) -> None:
    path = base / "input" / "data" / channel / f"{channel}.safetensors"
    write_safetensors(path, tensors)


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (
            lambda base: (base / "input/config/hyperparameters.json").write_text("{family: x"),
            "hyperparameters.json is not valid JSON: ",
        ),
        (
            lambda base: (base / "input/config/hyperparameters.json").write_text('["a"]'),
            "hyperparameters.json must hold a JSON object of hyperparameters",
        ),
        (
            lambda base: set_hyperparameters(base, **{"lockgate.task": "ranking"}),
            "task 'ranking' is not supported; use one of: classification, regression",
        ),
        (
            lambda base: (base / "input/config/hyperparameters.json").write_text(
                json.dumps({"family": "logistic"})
            ),
            "hyperparameter 'lockgate.task' is missing; set it to classification or regression",
        ),
        (
            lambda base: (base / "input/config/hyperparameters.json").write_text(
                json.dumps({"lockgate.task": "regression"})
            ),
            "hyperparameter 'family' is missing; name the model family to train",
        ),
        (
            lambda base: rewrite_channel(
                base, "validation", X=np.zeros((4, 3), np.float32), y=np.zeros(4, np.int64)
            ),
            "train has 8 features but validation has 3",
        ),
        (
            lambda base: rewrite_channel(base, "train", X=np.zeros((4, 8), np.float32)),
            "must hold tensors 'X' and 'y' (has: ['X'])",
        ),
        (
            lambda base: rewrite_channel(
                base, "train", X=np.zeros((4, 8), np.float32), y=np.zeros(5, np.int64)
            ),
            "X must be (rows, features) and y (rows,) with rows > 0; got X(4, 8) and y(5,)",
        ),
        (
            lambda base: rewrite_channel(
                base, "train", X=np.zeros((4, 8), np.float32), y=np.array([0, 1, 2, 1])
            ),
            "train has class index 2, outside the 2 classes of 'lockgate.classes'",
        ),
        (
            lambda base: rewrite_channel(
                base, "train", X=np.zeros((4, 8), np.float32), y=np.zeros(4, np.float32)
            ),
            "classification needs y as integer class indices, got floats",
        ),
    ],
)
def test_a_broken_job_fails_with_what_is_wrong(opt_ml: Path, damage: Any, reason: str) -> None:
    damage(opt_ml)
    assert main() == 1
    failure = (opt_ml / "output" / "failure").read_text()
    assert failure.startswith("ConfigError: ")
    assert reason in failure


def test_classes_default_to_the_indices_in_the_data(opt_ml: Path) -> None:
    hyperparameters = {k: v for k, v in HYPERPARAMETERS.items() if k != "lockgate.classes"}
    (opt_ml / "input" / "config" / "hyperparameters.json").write_text(json.dumps(hyperparameters))
    assert main() == 0
    assert json.loads((opt_ml / "model" / "metrics.json").read_text())["roc_auc"] > 0.8


def test_a_missing_channel_file_names_the_channel(opt_ml: Path) -> None:
    (opt_ml / "input" / "data" / "validation" / "validation.safetensors").unlink()
    assert main() == 1
    failure = (opt_ml / "output" / "failure").read_text()
    assert failure.startswith("ConfigError: channel 'validation' at ")
    assert "must hold exactly one .safetensors file (found: none)" in failure


def test_a_damaged_channel_file_is_named(opt_ml: Path) -> None:
    (opt_ml / "input" / "data" / "train" / "train.safetensors").write_bytes(b"not a tensor file")
    assert main() == 1
    failure = (opt_ml / "output" / "failure").read_text()
    assert failure.startswith("ConfigError: ")
    assert "train.safetensors is not a readable safetensors file: " in failure


def test_an_unexpected_error_gives_its_type_and_message_after_the_traceback(
    opt_ml: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def explode(params: object, job: object) -> None:
        raise RuntimeError("out of memory\nwhile growing tree 3")

    broken = dataclasses.replace(FAMILIES["hist_gradient_boosting"], trainer=explode)
    monkeypatch.setitem(FAMILIES, "hist_gradient_boosting", broken)
    assert main() == 1
    reason = "RuntimeError: out of memory while growing tree 3"  # one paragraph
    assert (opt_ml / "output" / "failure").read_text() == reason + "\n"
    err = capsys.readouterr().err
    assert "Traceback" in err
    assert err.splitlines()[-1] == reason


def test_a_rerun_leaves_only_its_own_result(opt_ml: Path) -> None:
    assert main() == 0
    set_hyperparameters(opt_ml, family="xgboost")
    assert main() == 1
    assert sorted(path.name for path in (opt_ml / "model").iterdir()) == []
    set_hyperparameters(opt_ml)
    assert main() == 0
    assert not (opt_ml / "output" / "failure").exists()
    assert sorted(path.name for path in (opt_ml / "model").iterdir()) == [
        "metrics.json",
        "model.pkl",
    ]


def test_sm_hps_replaces_hyperparameters_json_with_toolkit_decoded_values(
    opt_ml: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    set_hyperparameters(opt_ml, family="xgboost")  # the file would fail
    # The toolkit JSON-decodes every value that parses: numbers and lists arrive decoded.
    hps = {
        "family": "logistic",
        "logistic.C": 0.5,
        "lockgate.task": "classification",
        "lockgate.metric": "f1",
        "lockgate.seed": 3,
        "lockgate.classes": CLASSES,
    }
    monkeypatch.setenv("SM_HPS", json.dumps(hps))
    assert main() == 0
    metrics = json.loads((opt_ml / "model" / "metrics.json").read_text())
    assert metrics["f1"] > 0.7
    assert len(metrics["history"]) == 1


def test_a_pruned_trial_exits_0_without_failure_or_model(opt_ml: Path) -> None:
    outcome = run(ContainerPaths.from_env(), report=lambda step, value: step == 2)
    assert outcome.status == "pruned"
    assert outcome.exit_code == 0
    assert outcome.pruned_at_step == 2
    metrics = json.loads((opt_ml / "model" / "metrics.json").read_text())
    assert metrics["status"] == "pruned"
    assert metrics["pruned_at_step"] == 2
    assert [entry["step"] for entry in metrics["history"]] == [1, 2]
    assert "roc_auc" not in metrics
    assert not (opt_ml / "model" / "model.pkl").exists()
    assert not (opt_ml / "output" / "failure").exists()


def test_a_suggested_trial_runs_through_its_hyperparameters(
    opt_ml: Path, regression: Splits, tmp_path: Path
) -> None:
    space = SearchSpace.from_config(TrainConfig(), "regression")
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    trial = study.ask()
    params = space.suggest(trial)
    hyperparameters = trial_hyperparameters(space, params, "mae", seed=1)
    assert all(isinstance(value, str) for value in hyperparameters.values())
    base = build_tree(tmp_path / "regression", regression, hyperparameters)
    outcome = run(ContainerPaths.from_env({"SAGEMAKER_BASE_DIR": str(base)}))
    assert outcome.status == "completed", outcome.reason
    assert outcome.params == params
    assert outcome.value == json.loads((base / "model" / "metrics.json").read_text())["mae"]


def test_trial_hyperparameters_carry_the_trial_and_lockgate_keys() -> None:
    space = SearchSpace.for_family("logistic", "classification")
    params = {"family": "logistic", "logistic.C": 0.25, "logistic.class_weight": "balanced"}
    assert trial_hyperparameters(space, params, "f1", seed=9, classes=CLASSES) == {
        "family": "logistic",
        "logistic.C": "0.25",
        "logistic.class_weight": "balanced",
        "lockgate.task": "classification",
        "lockgate.metric": "f1",
        "lockgate.seed": "9",
        "lockgate.classes": '["stays", "churns"]',
    }


def test_paths_default_as_in_sagemaker_training_toolkit() -> None:
    paths = ContainerPaths.from_env({})
    assert paths.model_dir == Path("/opt/ml/model")
    assert paths.hyperparameters_file == Path("/opt/ml/input/config/hyperparameters.json")
    assert paths.channels == {
        "train": Path("/opt/ml/input/data/train"),
        "validation": Path("/opt/ml/input/data/validation"),
    }
    assert paths.failure_file == Path("/opt/ml/output/failure")
    assert paths.output_data_dir == Path("/opt/ml/output/data")
    moved = ContainerPaths.from_env({"SM_OUTPUT_DIR": "/tmp/out", "SM_MODEL_DIR": "/tmp/m"})
    assert moved.failure_file == Path("/tmp/out/failure")
    assert moved.output_data_dir == Path("/tmp/out/data")
    assert moved.model_dir == Path("/tmp/m")


def test_missing_hyperparameters_fail_with_where_they_were_looked_for(
    opt_ml: Path,
) -> None:
    (opt_ml / "input" / "config" / "hyperparameters.json").unlink()
    assert main() == 1
    assert (
        (opt_ml / "output" / "failure")
        .read_text()
        .startswith("ConfigError: no hyperparameters: SM_HPS is not set and ")
    )


@pytest.mark.slow
def test_the_container_contract_end_to_end_in_a_subprocess(
    tmp_path: Path, three_class: Splits
) -> None:
    hyperparameters = {
        "family": "random_forest",
        "random_forest.n_estimators": "20",
        "random_forest.max_features": "all",
        "lockgate.task": "classification",
        "lockgate.metric": "accuracy",
        "lockgate.classes": json.dumps(["a", "b", "c"]),
    }
    base = build_tree(tmp_path / "opt" / "ml", three_class, hyperparameters)
    env = {key: value for key, value in os.environ.items() if not key.startswith("SM_")}
    env.update(sm_environment(base))
    command = "from lockgate.pipelines.training.entrypoint import main; raise SystemExit(main())"
    done = subprocess.run(
        [sys.executable, "-c", command], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    model: Any = pickle.loads((base / "model" / "model.pkl").read_bytes())  # noqa: S301
    assert model.predict_proba(three_class.X_val).shape == (len(three_class.X_val), 3)
    metrics = json.loads((base / "model" / "metrics.json").read_text())
    majority = np.bincount(three_class.y_val).max() / len(three_class.y_val)
    assert metrics["accuracy"] > majority + 0.2

    hyperparameters["random_forest.max_depth"] = "deep"
    (base / "input" / "config" / "hyperparameters.json").write_text(json.dumps(hyperparameters))
    failed = subprocess.run(
        [sys.executable, "-c", command], env=env, capture_output=True, text=True, timeout=120
    )
    reason = "ConfigError: hyperparameter 'random_forest.max_depth' must be a number, got 'deep'"
    assert failed.returncode == 1
    assert failed.stderr.strip() == reason
    assert (base / "output" / "failure").read_text().strip() == reason
