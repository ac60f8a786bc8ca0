"""The ``mlp`` family: a small multilayer perceptron trained with PyTorch.

It trains on the float32 feature tensors directly: inputs standardised with the training
split's mean and scale (regression targets too), ReLU hidden layers with dropout, AdamW,
cross-entropy or mean squared error, shuffled mini-batches from a seeded generator. After each
epoch the validation metric is recorded and reported (so a study can prune the trial); training
stops early after :data:`PATIENCE` epochs without improvement and keeps the best epoch's
weights.

The fitted model is an :class:`MLPModel`: the weights as NumPy arrays and a NumPy forward
pass, so a model package predicts without PyTorch installed. PyTorch is imported only when a
trial trains.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

import numpy as np

from lockgate.errors import ConfigError
from lockgate.pipelines.training.families import TORCH_HINT, n_classes_of
from lockgate.pipelines.training.metrics import METRICS

if TYPE_CHECKING:
    from lockgate.pipelines.training.families import FitContext, ParamValue

PATIENCE = 5
"""Epochs without a better validation metric before training stops."""


class MLPModel:
    """A fitted MLP that predicts with NumPy only.

    Args:
        layers: ``(weight, bias)`` per linear layer, weight shaped ``(out, in)`` as in PyTorch.
        mean: per-feature mean subtracted from inputs.
        scale: per-feature scale inputs are divided by.
        task: ``classification`` or ``regression``.
        n_classes: output classes (classification).
        target_mean: added back to regression outputs.
        target_scale: regression outputs are multiplied by it.
    """

    def __init__(
        self,
        layers: list[tuple[np.ndarray, np.ndarray]],
        mean: np.ndarray,
        scale: np.ndarray,
        task: str,
        n_classes: int = 0,
        target_mean: float = 0.0,
        target_scale: float = 1.0,
    ) -> None:
        self.layers = layers
        self.mean = mean
        self.scale = scale
        self.task = task
        self.n_classes = n_classes
        self.target_mean = target_mean
        self.target_scale = target_scale

    @property
    def classes_(self) -> np.ndarray:
        """Class indices the probability columns stand for (as in scikit-learn)."""
        return np.arange(self.n_classes)

    def _forward(self, X: np.ndarray) -> np.ndarray:
        hidden = (np.asarray(X, dtype=np.float32) - self.mean) / self.scale
        for index, (weight, bias) in enumerate(self.layers):
            hidden = hidden @ weight.T + bias
            if index < len(self.layers) - 1:
                hidden = np.maximum(hidden, 0.0)
        return np.asarray(hidden)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Class probabilities, ``(rows, n_classes)``.

        Raises:
            AttributeError: the model is a regression model.
        """
        if self.task != "classification":
            raise AttributeError("predict_proba is only defined for classification models")
        logits = self._forward(X).astype(np.float64)
        logits -= logits.max(axis=1, keepdims=True)
        exp = np.exp(logits)
        return np.asarray(exp / exp.sum(axis=1, keepdims=True))

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Class indices (classification) or predicted values (regression)."""
        if self.task == "classification":
            return np.asarray(self.predict_proba(X).argmax(axis=1))
        output = self._forward(X)[:, 0].astype(np.float64)
        return np.asarray(output * self.target_scale + self.target_mean)


def _import_torch() -> Any:
    try:
        return importlib.import_module("torch")
    except ImportError:
        raise ConfigError(f"family 'mlp' needs PyTorch: {TORCH_HINT}") from None


def fit_mlp(params: dict[str, ParamValue], job: FitContext) -> MLPModel:
    """Train an MLP on ``job``'s splits; see the module docstring for the procedure."""
    torch = _import_torch()
    torch.manual_seed(job.seed)
    generator = torch.Generator().manual_seed(job.seed)
    nn = torch.nn

    X = np.asarray(job.X_train, dtype=np.float32)
    mean = X.mean(axis=0)
    scale = X.std(axis=0)
    scale[scale == 0] = 1.0  # a constant feature carries nothing; avoid dividing by zero
    inputs = torch.from_numpy((X - mean) / scale)

    classification = job.task == "classification"
    n_classes = n_classes_of(job.classes) if classification else 0
    target_mean, target_scale = 0.0, 1.0
    if classification:
        targets = torch.from_numpy(np.asarray(job.y_train, dtype=np.int64))
        criterion = nn.CrossEntropyLoss()
    else:
        y = np.asarray(job.y_train, dtype=np.float64)
        target_mean, target_scale = float(y.mean()), float(y.std()) or 1.0
        standardised = ((y - target_mean) / target_scale).astype(np.float32)
        targets = torch.from_numpy(standardised.reshape(-1, 1))
        criterion = nn.MSELoss()

    modules: list[Any] = []
    width = X.shape[1]
    for _ in range(int(params["layers"])):
        hidden = int(params["hidden_units"])
        modules += [nn.Linear(width, hidden), nn.ReLU(), nn.Dropout(float(params["dropout"]))]
        width = hidden
    modules.append(nn.Linear(width, n_classes if classification else 1))
    network = nn.Sequential(*modules)
    optimizer = torch.optim.AdamW(
        network.parameters(),
        lr=float(params["learning_rate"]),
        weight_decay=float(params["weight_decay"]),
    )

    def snapshot() -> MLPModel:
        layers = [
            (
                module.weight.detach().cpu().numpy().copy(),
                module.bias.detach().cpu().numpy().copy(),
            )
            for module in network
            if isinstance(module, nn.Linear)
        ]
        return MLPModel(layers, mean, scale, job.task, n_classes, target_mean, target_scale)

    metric = METRICS[job.metric]
    batch_size = int(params["batch_size"])
    rows = len(X)
    best: tuple[float, MLPModel] | None = None
    stale = 0
    for epoch in range(1, int(params["epochs"]) + 1):
        network.train()
        order = torch.randperm(rows, generator=generator)
        total = 0.0
        for start in range(0, rows, batch_size):
            batch = order[start : start + batch_size]
            optimizer.zero_grad()
            loss = criterion(network(inputs[batch]), targets[batch])
            loss.backward()
            optimizer.step()
            total += float(loss.item()) * len(batch)
        network.eval()
        model = snapshot()
        value = job.record(epoch, model, train_loss=total / rows)
        if best is None or metric.better(value, best[0]):
            best, stale = (value, model), 0
        else:
            stale += 1
        job.checkpoint(epoch, value)
        if stale >= PATIENCE:
            break
    if best is None:
        raise ConfigError("family 'mlp' needs epochs >= 1")
    return best[1]
