"""``python -m lockgate.aws.container``, the SageMaker image's entry point, run as SageMaker runs
it: ``train`` against an /opt/ml tree in a temp folder, ``serve`` until SIGTERM."""

from __future__ import annotations

import http.client
import json
import os
import pickle
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.datasets import make_classification

from lockgate.aws.container import USAGE, main
from lockgate.pipelines.data.tensors import write_safetensors
from lockgate.pipelines.training.entrypoint import trial_hyperparameters
from lockgate.pipelines.training.space import SearchSpace
from tests.cli.conftest import wait_until
from tests.packages import make_package, prepare_churn

CONTAINER = [sys.executable, "-m", "lockgate.aws.container"]
WAIT = 120.0
"""Seconds a subprocess may take (imports scikit-learn, trains or loads a package)."""
CLASSES = ["stays", "churns"]


def trial(**changes: str) -> dict[str, str]:
    """The hyperparameters lockgate's launcher gives one logistic-regression trial."""
    space = SearchSpace.for_family("logistic", "classification")
    params = {"family": "logistic", "logistic.C": 0.5, "logistic.class_weight": "balanced"}
    return {**trial_hyperparameters(space, params, "roc_auc", seed=3, classes=CLASSES), **changes}


def opt_ml(base: Path, hyperparameters: dict[str, str]) -> Path:
    """``base`` laid out as SageMaker lays out /opt/ml before it starts a training container."""
    X, y = make_classification(
        n_samples=300, n_features=6, n_informative=4, class_sep=1.5, random_state=0
    )
    X, y = X.astype(np.float32), y.astype(np.int64)
    config = base / "input" / "config"
    config.mkdir(parents=True)
    (config / "hyperparameters.json").write_text(json.dumps(hyperparameters))
    for channel, rows in (("train", slice(0, 200)), ("validation", slice(200, None))):
        folder = base / "input" / "data" / channel
        folder.mkdir(parents=True)
        write_safetensors(folder / f"{channel}.safetensors", {"X": X[rows], "y": y[rows]})
    return base


def environment(**variables: str) -> dict[str, str]:
    """This process's environment without SageMaker's or lockgate's variables, plus
    ``variables``: what the container would see, and nothing the developer set."""
    clean = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("SM_", "SAGEMAKER_", "LOCKGATE_"))
    }
    return {**clean, **variables}


@pytest.mark.slow
def test_train_writes_the_model_and_metrics_where_sagemaker_collects_them(
    tmp_path: Path,
) -> None:
    base = opt_ml(tmp_path / "opt" / "ml", trial())
    done = subprocess.run(
        [*CONTAINER, "train"],
        env=environment(SAGEMAKER_BASE_DIR=str(base)),
        capture_output=True,
        text=True,
        timeout=WAIT,
    )
    assert done.returncode == 0, done.stderr
    metrics = json.loads((base / "model" / "metrics.json").read_text())
    assert metrics["status"] == "completed"
    assert metrics["roc_auc"] > 0.8
    # The job's small output.tar.gz, where lockgate's launcher reads the trial's metric.
    assert json.loads((base / "output" / "data" / "metrics.json").read_text()) == metrics
    model: Any = pickle.loads((base / "model" / "model.pkl").read_bytes())  # noqa: S301
    assert model.predict_proba(np.zeros((3, 6), np.float32)).shape == (3, 2)
    assert not (base / "output" / "failure").exists()


@pytest.mark.slow
def test_train_with_a_bad_hyperparameter_writes_the_failure_and_exits_1(tmp_path: Path) -> None:
    base = opt_ml(tmp_path / "opt" / "ml", trial(**{"logistic.C": "strong"}))
    # The SM_* variables sagemaker-training-toolkit exports win over SAGEMAKER_BASE_DIR.
    output = tmp_path / "elsewhere" / "output"
    done = subprocess.run(
        [*CONTAINER, "train"],
        env=environment(
            SAGEMAKER_BASE_DIR=str(tmp_path / "not-used"),
            SM_INPUT_CONFIG_DIR=str(base / "input" / "config"),
            SM_CHANNEL_TRAIN=str(base / "input" / "data" / "train"),
            SM_CHANNEL_VALIDATION=str(base / "input" / "data" / "validation"),
            SM_MODEL_DIR=str(base / "model"),
            SM_OUTPUT_DIR=str(output),
        ),
        capture_output=True,
        text=True,
        timeout=WAIT,
    )
    reason = "ConfigError: hyperparameter 'logistic.C' must be a number, got 'strong'"
    assert done.returncode == 1
    assert (output / "failure").read_text() == reason + "\n"
    assert done.stderr.strip() == reason
    assert not (base / "model" / "model.pkl").exists()
    assert not (output / "data" / "metrics.json").exists()
    assert not (tmp_path / "not-used").exists()


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("container-package")
    return make_package(prepare_churn(root, rows=600), root / "package")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def get(port: int, path: str) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


@pytest.mark.slow
def test_serve_answers_ping_on_sagemakers_port_until_sigterm(package: Path, tmp_path: Path) -> None:
    port = free_port()
    state = tmp_path / "endpoint.json"
    log = tmp_path / "serve.log"
    # SageMaker's `serve` listens on every interface; a test listens on this machine only.
    command = [*CONTAINER, "serve", "--host", "127.0.0.1", "--model-dir", str(package)]
    with log.open("wb") as output:
        process = subprocess.Popen(
            [*command, "--state-file", str(state)],
            stdout=output,
            stderr=subprocess.STDOUT,
            env=environment(SAGEMAKER_BIND_TO_PORT=str(port)),
        )
    try:

        def details() -> str:
            return f"exit code {process.poll()}; log:\n{log.read_text(errors='replace')}"

        wait_until(
            lambda: state.exists() or process.poll() is not None, WAIT, "the server", details
        )
        document = json.loads(state.read_text())
        assert (document["host"], document["port"]) == ("127.0.0.1", port), details()
        assert get(port, "/ping") == 200
        process.send_signal(signal.SIGTERM)
        assert process.wait(WAIT) == 0, details()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert not state.exists()  # removed on a clean stop


@pytest.mark.parametrize(
    ("argv", "problem"),
    [
        ([], "no mode given"),
        (["predict"], "unknown mode 'predict'"),
        (["Train"], "unknown mode 'Train'"),
    ],
)
def test_anything_but_train_or_serve_prints_the_usage_and_exits_2(
    argv: list[str], problem: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    captured = capsys.readouterr()
    first, blank, *usage = captured.err.splitlines(keepends=True)
    assert first == f"python -m lockgate.aws.container: {problem}; use train or serve\n"
    assert blank == "\n"
    assert "".join(usage) == USAGE
    assert usage[0] == "usage: python -m lockgate.aws.container {train,serve} [serve options]\n"
    assert captured.out == ""


def test_help_prints_the_usage(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    assert capsys.readouterr().out.startswith(
        "usage: python -m lockgate.aws.container {train,serve}"
    )
