"""The mlp family: its NumPy model always; its PyTorch training where PyTorch is installed."""

from __future__ import annotations

import pickle
import sys
from typing import Any

import numpy as np
import pytest

from lockgate.errors import ConfigError
from lockgate.pipelines.training.families import FAMILIES, FitResult, TrialPruned
from lockgate.pipelines.training.mlp import MLPModel

from .conftest import Splits

NO_TORCH = "PyTorch is not installed (pip install 'lockgate[torch]')"
QUICK = {"hidden_units": 32, "layers": 1, "epochs": 12, "batch_size": 64, "learning_rate": 5e-3}


def tiny_model(task: str) -> MLPModel:
    """Two inputs, one hidden layer of two ReLU units, hand-set weights."""
    hidden = (np.array([[1.0, 0.0], [0.0, 1.0]], np.float32), np.zeros(2, np.float32))
    if task == "classification":
        out = (
            np.array([[1.0, -1.0], [-1.0, 1.0], [0.0, 0.0]], np.float32),
            np.zeros(3, np.float32),
        )
        return MLPModel([hidden, out], np.zeros(2, np.float32), np.ones(2, np.float32), task, 3)
    out = (np.array([[1.0, 1.0]], np.float32), np.zeros(1, np.float32))
    return MLPModel(
        [hidden, out], np.zeros(2, np.float32), np.ones(2, np.float32), task, 0, 10.0, 2.0
    )


def test_the_fitted_model_predicts_with_numpy_alone() -> None:
    model = tiny_model("classification")
    X = np.array([[3.0, 0.0], [0.0, 3.0], [-1.0, -1.0]], np.float32)
    proba = model.predict_proba(X)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert model.predict(X)[:2].tolist() == [0, 1]
    assert proba[0, 0] > 0.9 and proba[1, 1] > 0.9
    np.testing.assert_allclose(proba[2], [1 / 3] * 3)  # all hidden units off: no preference
    np.testing.assert_array_equal(model.classes_, [0, 1, 2])


def test_a_regression_model_undoes_the_target_scaling() -> None:
    model = tiny_model("regression")
    # hidden = relu([1, 2]) -> output 3 -> 3 * 2.0 + 10.0
    assert model.predict(np.array([[1.0, 2.0]], np.float32)).tolist() == [16.0]
    with pytest.raises(AttributeError, match="only defined for classification"):
        model.predict_proba(np.zeros((1, 2), np.float32))


def test_the_model_pickles_without_pytorch(monkeypatch: pytest.MonkeyPatch) -> None:
    data = pickle.dumps(tiny_model("classification"))
    monkeypatch.setitem(sys.modules, "torch", None)
    restored = pickle.loads(data)  # noqa: S301 - our own object
    assert restored.predict(np.array([[3.0, 0.0]], np.float32)).tolist() == [0]


def test_training_without_pytorch_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch, binary: Splits
) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(
        ConfigError, match=r"family 'mlp' needs PyTorch: pip install 'lockgate\[torch\]'"
    ):
        fit(binary, "roc_auc")


def fit(data: Splits, metric: str, **options: Any) -> FitResult:
    return FAMILIES["mlp"].fit(
        QUICK,
        data.task,
        options.pop("seed", 5),
        data.X_train,
        data.y_train,
        data.X_val,
        data.y_val,
        metric,
        data.classes,
        **options,
    )


@pytest.fixture
def torch() -> Any:
    return pytest.importorskip("torch", reason=NO_TORCH)


def test_mlp_classifier_learns_and_reports_each_epoch(torch: Any, three_class: Splits) -> None:
    epochs: list[int] = []
    result = fit(three_class, "accuracy", report=lambda step, value: epochs.append(step) or False)
    majority = np.bincount(three_class.y_val).max() / len(three_class.y_val)
    accuracy = float(np.mean(result.model.predict(three_class.X_val) == three_class.y_val))
    assert accuracy > majority + 0.2
    assert epochs == [entry["step"] for entry in result.history]
    assert all("train_loss" in entry for entry in result.history)
    best = max(entry["accuracy"] for entry in result.history)
    assert accuracy == pytest.approx(best)  # the best epoch's weights are kept
    restored = pickle.loads(pickle.dumps(result.model))  # noqa: S301 - our own object
    np.testing.assert_array_equal(
        restored.predict(three_class.X_val), result.model.predict(three_class.X_val)
    )


def test_mlp_regressor_beats_predicting_the_mean(torch: Any, regression: Splits) -> None:
    result = fit(regression, "rmse")
    baseline = float(np.sqrt(np.mean((regression.y_val - regression.y_train.mean()) ** 2)))
    assert min(entry["rmse"] for entry in result.history) < 0.7 * baseline


def test_mlp_is_reproducible_with_a_seed(torch: Any, binary: Splits) -> None:
    first = fit(binary, "log_loss", seed=1)
    second = fit(binary, "log_loss", seed=1)
    np.testing.assert_array_equal(
        first.model.predict_proba(binary.X_val), second.model.predict_proba(binary.X_val)
    )


def test_mlp_is_pruned_after_2_epochs_when_told_at_step_2(torch: Any, binary: Splits) -> None:
    steps: list[int] = []

    def report(step: int, value: float) -> bool:
        steps.append(step)
        return step == 2

    with pytest.raises(TrialPruned) as pruned:
        fit(binary, "roc_auc", report=report)
    assert steps == [1, 2]
    assert pruned.value.step == 2
