"""The search space of a study: model families and their parameter ranges, from lockgate.toml.

``[train.families]`` maps a family to ranges for some of its parameters::

    [train.families.hist_gradient_boosting]
    learning_rate = [0.02, 0.2, "log"]   # float, sampled log-uniformly
    max_iter = [100, 400]                # int, uniform
    [train.families.random_forest]       # listed with no ranges: its default ranges
    [train.families.logistic]
    class_weight = ["balanced"]          # choices

A parameter not listed keeps its family's default range (see ``families.py``). With no
``[train.families]`` at all the study searches the task's defaults: ``logistic``,
``hist_gradient_boosting`` and ``random_forest`` for classification; ``linear`` (Ridge),
``hist_gradient_boosting`` and ``random_forest`` for regression. ``mlp`` is searched only when
listed, and needs PyTorch.

Everything is checked when the space is built, before any trial runs. Trial parameters are
conditional: ``family`` is chosen first, then only that family's parameters, named
``<family>.<parameter>`` (e.g. ``hist_gradient_boosting.learning_rate``), so Optuna's
samplers never mix parameters of different families.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from lockgate.errors import ConfigError
from lockgate.pipelines.training.families import (
    DEFAULT_FAMILIES,
    FAMILIES,
    TORCH_HINT,
    Family,
    ParamSpec,
    ParamValue,
    families_for,
    torch_available,
)
from lockgate.pipelines.training.metrics import validate_task

if TYPE_CHECKING:
    from optuna.trial import BaseTrial

    from lockgate.config import TrainConfig

FAMILY = "family"
"""The trial parameter (and hyperparameter) naming the model family."""
RESERVED_PREFIXES = ("lockgate.", "sagemaker_")
"""Hyperparameters that are not trial parameters: lockgate's own and the SageMaker SDK's."""


@dataclass(frozen=True)
class FloatRange:
    """Floats from ``low`` to ``high``, sampled log-uniformly if ``log``."""

    low: float
    high: float
    log: bool = False


@dataclass(frozen=True)
class IntRange:
    """Integers from ``low`` to ``high`` inclusive, sampled log-uniformly if ``log``."""

    low: int
    high: int
    log: bool = False


@dataclass(frozen=True)
class Choice:
    """One of ``choices``."""

    choices: tuple[str, ...]


Domain = FloatRange | IntRange | Choice


@dataclass(frozen=True)
class SearchSpace:
    """The families a study picks from and the range of each of their parameters.

    Attributes:
        task: ``classification`` or ``regression``.
        families: family name -> parameter name -> domain, in search order.
    """

    task: str
    families: Mapping[str, Mapping[str, Domain]]

    @classmethod
    def from_config(cls, train: TrainConfig, task: str) -> SearchSpace:
        """The space ``[train.families]`` describes, fully validated.

        Raises:
            ConfigError: unknown task, family or parameter; a family not valid for the task;
                an empty, inverted, non-numeric or non-positive log range; ``mlp`` without
                PyTorch. The message names the table and key.
        """
        validate_task(task)
        requested: Mapping[str, Mapping[str, Sequence[float | int | str]]] = train.families or {
            name: {} for name in DEFAULT_FAMILIES[task]
        }
        families: dict[str, dict[str, Domain]] = {}
        for name, ranges in requested.items():
            family = _family_for(name, task, where="train.families")
            unknown = sorted(set(ranges) - set(family.params))
            if unknown:
                raise ConfigError(
                    f"train.families.{name}: no parameter '{unknown[0]}'; "
                    f"its parameters are: {', '.join(family.params)}"
                )
            families[name] = {
                param: parse_range(
                    f"train.families.{name}.{param}", spec, ranges.get(param, spec.search_range)
                )
                for param, spec in family.params.items()
            }
        return cls(task, families)

    @classmethod
    def for_family(cls, family: str, task: str) -> SearchSpace:
        """One family with its default ranges: what a training container parses against.

        Raises:
            ConfigError: as :meth:`from_config` for a config listing only ``family``.
        """
        validate_task(task)
        spec = _family_for(family, task, where=f"hyperparameter {FAMILY}")
        domains = {
            param: parse_range(f"{family}.{param}", param_spec, param_spec.search_range)
            for param, param_spec in spec.params.items()
        }
        return cls(task, {family: domains})

    def suggest(self, trial: BaseTrial) -> dict[str, ParamValue]:
        """Ask ``trial`` for a family, then for that family's parameters only.

        Returns:
            ``{"family": name, "<family>.<param>": value, ...}``; ints for int ranges.
        """
        family = str(trial.suggest_categorical(FAMILY, list(self.families)))
        params: dict[str, ParamValue] = {FAMILY: family}
        for param, domain in self.families[family].items():
            name = f"{family}.{param}"
            if isinstance(domain, FloatRange):
                params[name] = trial.suggest_float(name, domain.low, domain.high, log=domain.log)
            elif isinstance(domain, IntRange):
                params[name] = trial.suggest_int(name, domain.low, domain.high, log=domain.log)
            else:
                params[name] = str(trial.suggest_categorical(name, list(domain.choices)))
        return params

    def to_hyperparameters(self, params: Mapping[str, ParamValue]) -> dict[str, str]:
        """Trial parameters as SageMaker hyperparameters: every value a string.

        Floats are written with ``repr`` (shortest text that reads back to the same float).

        Raises:
            ValueError: ``params`` is not a point of this space.
        """
        family, values = split_params(params)
        domains = self.families.get(family)
        if domains is None:
            raise ValueError(f"family '{family}' is not in this search space")
        unknown = sorted(set(values) - set(domains))
        if unknown:
            raise ValueError(f"'{family}.{unknown[0]}' is not a parameter of this search space")
        hyperparameters = {FAMILY: family}
        for param, value in values.items():
            domain = domains[param]
            if isinstance(domain, FloatRange):
                text = repr(float(value))
            elif isinstance(domain, IntRange):
                text = str(int(value))
            else:
                text = str(value)
            hyperparameters[f"{family}.{param}"] = text
        return hyperparameters

    def from_hyperparameters(self, hyperparameters: Mapping[str, str]) -> dict[str, ParamValue]:
        """Trial parameters back from string hyperparameters, typed by the family's declaration.

        Keys starting with ``lockgate.`` or ``sagemaker_`` are not trial parameters and are
        skipped. Values are checked against what the estimator accepts, not against this
        space's ranges (a study may search wider than the defaults).

        Raises:
            ConfigError: ``family`` is missing or not in this space, a key is not a parameter
                of the family, or a value is not of the parameter's type.
        """
        family = hyperparameters.get(FAMILY)
        if family is None:
            raise ConfigError(
                f"hyperparameter '{FAMILY}' is missing; set it to one of: "
                f"{', '.join(self.families)}"
            )
        if family not in self.families:
            raise ConfigError(
                f"hyperparameter {FAMILY}='{family}' is not in this search space; "
                f"choose one of: {', '.join(self.families)}"
            )
        specs = FAMILIES[family].params
        for key in sorted(hyperparameters):
            prefix, _, param = key.partition(".")
            if key == FAMILY or key.startswith(RESERVED_PREFIXES):
                continue
            if prefix != family or param not in specs:
                raise ConfigError(
                    f"hyperparameter '{key}' is not a parameter of family '{family}'; "
                    f"its parameters are: {', '.join(f'{family}.{p}' for p in specs)}"
                )
        params: dict[str, ParamValue] = {FAMILY: family}
        for param, spec in specs.items():  # declaration order, as suggest() produces them
            key = f"{family}.{param}"
            if key in hyperparameters:
                params[key] = parse_value(key, spec, hyperparameters[key])
        return params


def split_params(params: Mapping[str, ParamValue]) -> tuple[str, dict[str, ParamValue]]:
    """``(family, {param: value})`` from prefixed trial parameters.

    Raises:
        ValueError: there is no ``family``, or a key belongs to another family.
    """
    family = params.get(FAMILY)
    if not isinstance(family, str):
        raise ValueError(f"trial parameters have no '{FAMILY}': {sorted(params)}")
    values: dict[str, ParamValue] = {}
    for key, value in params.items():
        if key == FAMILY:
            continue
        prefix, _, param = key.partition(".")
        if prefix != family or not param:
            raise ValueError(f"'{key}' is not a parameter of family '{family}'")
        values[param] = value
    return family, values


def parse_range(where: str, spec: ParamSpec, raw: Sequence[float | int | str]) -> Domain:
    """The domain a lockgate.toml range describes for a parameter declared as ``spec``.

    Raises:
        ConfigError: the range does not fit the parameter; ``where`` starts the message.
    """
    shown = _show(raw)
    if spec.kind == "choice":
        allowed = [str(choice) for choice in spec.search_range]
        if not raw or not all(isinstance(item, str) and item in allowed for item in raw):
            raise ConfigError(
                f"{where}: {shown} is not a list of choices from: {', '.join(allowed)}"
            )
        if len(set(raw)) != len(raw):
            raise ConfigError(f"{where}: {shown} lists a choice twice")
        return Choice(tuple(str(item) for item in raw))

    log = len(raw) == 3 and raw[2] == "log"
    bounds = list(raw[:2])
    if len(raw) not in (2, 3) or (len(raw) == 3 and not log):
        raise ConfigError(
            f'{where}: {shown} is not a range; write [low, high] or [low, high, "log"]'
        )
    if not all(_is_number(bound) for bound in bounds):
        raise ConfigError(f"{where}: the bounds of {shown} must be numbers")
    low, high = float(bounds[0]), float(bounds[1])
    if spec.kind == "int" and not (low.is_integer() and high.is_integer()):
        raise ConfigError(f"{where}: {shown} must have whole-number bounds (an int parameter)")
    if low >= high:
        raise ConfigError(f"{where}: {shown} is empty; low must be below high")
    if log and low <= 0:
        raise ConfigError(f"{where}: {shown} is a log range, so low must be above 0")
    if not (spec.admits(low) and spec.admits(high)):
        raise ConfigError(f"{where}: {shown} goes outside the valid values ({spec.limits()})")
    if spec.kind == "int":
        return IntRange(int(low), int(high), log)
    return FloatRange(low, high, log)


def parse_value(key: str, spec: ParamSpec, text: str) -> ParamValue:
    """One hyperparameter string as its declared type.

    Raises:
        ConfigError: the text is not a value of the parameter.
    """
    if spec.kind == "choice":
        allowed = [str(choice) for choice in spec.search_range]
        if text not in allowed:
            raise ConfigError(
                f"hyperparameter '{key}' must be one of: {', '.join(allowed)}; got '{text}'"
            )
        return text
    try:
        number = float(text)
    except ValueError:
        number = math.nan
    if not math.isfinite(number):
        raise ConfigError(f"hyperparameter '{key}' must be a number, got '{text}'")
    if spec.kind == "int" and not number.is_integer():
        raise ConfigError(f"hyperparameter '{key}' must be a whole number, got '{text}'")
    if not spec.admits(number):
        raise ConfigError(f"hyperparameter '{key}' must be {spec.limits()}, got '{text}'")
    if spec.kind == "int":
        return int(text) if text.strip().lstrip("+-").isdigit() else int(number)
    return number


def _family_for(name: str, task: str, where: str) -> Family:
    family = FAMILIES.get(name)
    valid = ", ".join(families_for(task))
    if family is None:
        raise ConfigError(
            f"{where}: unknown model family '{name}'; for {task} choose from: {valid}"
        )
    if task not in family.tasks:
        only = " and ".join(sorted(family.tasks))
        raise ConfigError(
            f"{where}: family '{name}' is for {only} only, and this dataset's task is "
            f"{task}; choose from: {valid}"
        )
    if family.needs_torch and not torch_available():
        raise ConfigError(f"family '{name}' needs PyTorch: {TORCH_HINT}")
    return family


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _show(raw: Sequence[float | int | str]) -> str:
    return (
        "[" + ", ".join(f'"{item}"' if isinstance(item, str) else f"{item:g}" for item in raw) + "]"
    )
