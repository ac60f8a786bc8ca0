"""The search space: refusals before any trial, Optuna's conditional space, string round trip."""

from __future__ import annotations

import sys
import tomllib
from typing import Any

import optuna
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lockgate.config import FileConfig, TrainConfig
from lockgate.errors import ConfigError
from lockgate.pipelines.training.families import FAMILIES
from lockgate.pipelines.training.space import (
    Choice,
    FloatRange,
    IntRange,
    SearchSpace,
    split_params,
)


def train_config(toml: str) -> TrainConfig:
    """``[train]`` as lockgate.toml would give it (through the real config model)."""
    return FileConfig.model_validate(tomllib.loads(toml)).train


def refusal(toml: str, task: str = "classification") -> str:
    with pytest.raises(ConfigError) as error:
        SearchSpace.from_config(train_config(toml), task)
    return str(error.value)


def test_no_families_table_searches_the_task_defaults() -> None:
    assert list(SearchSpace.from_config(TrainConfig(), "classification").families) == [
        "logistic",
        "hist_gradient_boosting",
        "random_forest",
    ]
    assert list(SearchSpace.from_config(TrainConfig(), "regression").families) == [
        "linear",
        "hist_gradient_boosting",
        "random_forest",
    ]


def test_listed_ranges_replace_defaults_and_the_rest_keep_theirs() -> None:
    space = SearchSpace.from_config(
        train_config(
            """
            [train.families.hist_gradient_boosting]
            learning_rate = [0.02, 0.2, "log"]
            max_iter = [100, 400]
            [train.families.random_forest]
            max_features = ["sqrt", "all"]
            """
        ),
        "classification",
    )
    assert list(space.families) == ["hist_gradient_boosting", "random_forest"]
    boosting = space.families["hist_gradient_boosting"]
    assert boosting["learning_rate"] == FloatRange(0.02, 0.2, log=True)
    assert boosting["max_iter"] == IntRange(100, 400)
    assert boosting["min_samples_leaf"] == IntRange(5, 50)  # the default range
    assert space.families["random_forest"]["max_features"] == Choice(("sqrt", "all"))


def test_unknown_family_is_refused_with_the_valid_ones() -> None:
    assert refusal("[train.families.xgboost]") == (
        "train.families: unknown model family 'xgboost'; for classification choose from: "
        "logistic, hist_gradient_boosting, random_forest, mlp"
    )


def test_unknown_parameter_is_refused_with_the_family_parameters() -> None:
    assert refusal("[train.families.random_forest]\ndepth = [2, 8]") == (
        "train.families.random_forest: no parameter 'depth'; its parameters are: "
        "n_estimators, max_depth, min_samples_leaf, max_features"
    )


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (
            "learning_rate = [0.1, 0.1]",
            "train.families.hist_gradient_boosting.learning_rate: [0.1, 0.1] is empty; "
            "low must be below high",
        ),
        (
            "max_iter = [300, 50]",
            "train.families.hist_gradient_boosting.max_iter: [300, 50] is empty; "
            "low must be below high",
        ),
        (
            'learning_rate = [0, 0.3, "log"]',
            'train.families.hist_gradient_boosting.learning_rate: [0, 0.3, "log"] is a log '
            "range, so low must be above 0",
        ),
        (
            'learning_rate = ["fast", "slow"]',
            'train.families.hist_gradient_boosting.learning_rate: the bounds of ["fast", '
            '"slow"] must be numbers',
        ),
        (
            'max_iter = ["10", 20]',
            'train.families.hist_gradient_boosting.max_iter: the bounds of ["10", 20] must be '
            "numbers",
        ),
        (
            "learning_rate = [0.1]",
            "train.families.hist_gradient_boosting.learning_rate: [0.1] is not a range; "
            'write [low, high] or [low, high, "log"]',
        ),
        (
            'learning_rate = [0.1, 0.2, "exp"]',
            'train.families.hist_gradient_boosting.learning_rate: [0.1, 0.2, "exp"] is not a '
            'range; write [low, high] or [low, high, "log"]',
        ),
        (
            "max_iter = [10.5, 20]",
            "train.families.hist_gradient_boosting.max_iter: [10.5, 20] must have whole-number "
            "bounds (an int parameter)",
        ),
        (
            "max_iter = [0, 20]",
            "train.families.hist_gradient_boosting.max_iter: [0, 20] goes outside the valid "
            "values (>= 1)",
        ),
        (
            "learning_rate = [-0.1, 0.3]",
            "train.families.hist_gradient_boosting.learning_rate: [-0.1, 0.3] goes outside the "
            "valid values (> 0)",
        ),
        (
            "learning_rate = [nan, 0.3]",
            "train.families.hist_gradient_boosting.learning_rate: the bounds of [nan, 0.3] "
            "must be numbers",
        ),
    ],
)
def test_bad_numeric_ranges_are_refused(line: str, message: str) -> None:
    assert refusal(f"[train.families.hist_gradient_boosting]\n{line}") == message


def test_bad_choices_are_refused() -> None:
    assert refusal('[train.families.random_forest]\nmax_features = ["auto"]') == (
        'train.families.random_forest.max_features: ["auto"] is not a list of choices from: '
        "sqrt, log2, all"
    )
    assert refusal("[train.families.random_forest]\nmax_features = []") == (
        "train.families.random_forest.max_features: [] is not a list of choices from: "
        "sqrt, log2, all"
    )
    assert refusal('[train.families.logistic]\nclass_weight = ["none", "none"]') == (
        'train.families.logistic.class_weight: ["none", "none"] lists a choice twice'
    )


def test_a_family_of_the_other_task_is_refused() -> None:
    assert refusal("[train.families.logistic]", task="regression") == (
        "train.families: family 'logistic' is for classification only, and this dataset's "
        "task is regression; choose from: linear, hist_gradient_boosting, random_forest, mlp"
    )
    assert "family 'linear' is for regression only" in refusal("[train.families.linear]")


def test_mlp_without_pytorch_is_refused_with_the_install_command(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)  # as if PyTorch were not installed
    assert refusal("[train.families.mlp]") == (
        "family 'mlp' needs PyTorch: pip install 'lockgate[torch]'"
    )


def test_an_unknown_task_is_refused() -> None:
    with pytest.raises(ConfigError, match="task 'ranking' is not supported"):
        SearchSpace.from_config(TrainConfig(), "ranking")


def in_domain(value: Any, domain: FloatRange | IntRange | Choice) -> bool:
    if isinstance(domain, Choice):
        return isinstance(value, str) and value in domain.choices
    if isinstance(domain, IntRange):
        return type(value) is int and domain.low <= value <= domain.high
    return type(value) is float and domain.low <= value <= domain.high


def test_suggest_gives_only_the_chosen_family_params_within_their_ranges() -> None:
    space = SearchSpace.from_config(
        train_config("[train.families.random_forest]\n[train.families.logistic]\nC = [0.5, 2]"),
        "classification",
    )
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
    seen: list[dict[str, Any]] = []

    def objective(trial: optuna.Trial) -> float:
        seen.append(space.suggest(trial))
        return 0.0

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study.optimize(objective, n_trials=30)
    assert {params["family"] for params in seen} == {"random_forest", "logistic"}
    for params, trial in zip(seen, study.trials, strict=True):
        family, values = split_params(params)
        assert set(values) == set(space.families[family])
        assert all(in_domain(values[name], space.families[family][name]) for name in values)
        assert trial.params == params  # what Optuna stores is exactly what the trial got
    assert all(0.5 <= params["logistic.C"] <= 2 for params in seen if "logistic.C" in params)


def test_the_same_sampler_seed_suggests_the_same_trials() -> None:
    space = SearchSpace.from_config(TrainConfig(), "regression")

    def suggestions() -> list[dict[str, Any]]:
        study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=11))
        study.optimize(lambda trial: len(str(space.suggest(trial))), n_trials=15)
        return [trial.params for trial in study.trials]

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    first = suggestions()
    assert len({params["family"] for params in first}) > 1
    assert suggestions() == first


@st.composite
def points(draw: st.DrawFn) -> tuple[SearchSpace, dict[str, Any]]:
    """A space (defaults of a task) and a point in it, drawn by value type."""
    task = draw(st.sampled_from(["classification", "regression"]))
    space = SearchSpace.from_config(TrainConfig(), task)
    family = draw(st.sampled_from(list(space.families)))
    params: dict[str, Any] = {"family": family}
    for name, domain in space.families[family].items():
        if isinstance(domain, FloatRange):
            value: Any = draw(st.floats(domain.low, domain.high, allow_nan=False))
        elif isinstance(domain, IntRange):
            value = draw(st.integers(domain.low, domain.high))
        else:
            value = draw(st.sampled_from(domain.choices))
        params[f"{family}.{name}"] = value
    return space, params


@settings(max_examples=200, deadline=None)
@given(points())
def test_hyperparameter_strings_round_trip_with_their_types(
    point: tuple[SearchSpace, dict[str, Any]],
) -> None:
    space, params = point
    hyperparameters = space.to_hyperparameters(params)
    assert all(isinstance(value, str) for value in hyperparameters.values())
    back = space.from_hyperparameters(hyperparameters)
    assert back == params
    assert [type(value) for value in back.values()] == [type(value) for value in params.values()]


def test_reading_hyperparameters_skips_lockgate_and_sagemaker_keys() -> None:
    space = SearchSpace.for_family("random_forest", "classification")
    params = space.from_hyperparameters(
        {
            "family": "random_forest",
            "random_forest.max_depth": "7",
            "random_forest.n_estimators": "1e2",
            "lockgate.task": "classification",
            "sagemaker_program": "train.py",
        }
    )
    assert params == {
        "family": "random_forest",
        "random_forest.max_depth": 7,
        "random_forest.n_estimators": 100,
    }


@pytest.mark.parametrize(
    ("hyperparameters", "message"),
    [
        ({}, "hyperparameter 'family' is missing; set it to one of: logistic"),
        (
            {"family": "random_forest"},
            "hyperparameter family='random_forest' is not in this search space; "
            "choose one of: logistic",
        ),
        (
            {"family": "logistic", "logistic.C": "abc"},
            "hyperparameter 'logistic.C' must be a number, got 'abc'",
        ),
        (
            {"family": "logistic", "logistic.C": "inf"},
            "hyperparameter 'logistic.C' must be a number, got 'inf'",
        ),
        (
            {"family": "logistic", "logistic.C": "-1"},
            "hyperparameter 'logistic.C' must be > 0, got '-1'",
        ),
        (
            {"family": "logistic", "logistic.class_weight": "heavy"},
            "hyperparameter 'logistic.class_weight' must be one of: none, balanced; got 'heavy'",
        ),
        (
            {"family": "logistic", "logistic.penalty": "l1"},
            "hyperparameter 'logistic.penalty' is not a parameter of family 'logistic'; "
            "its parameters are: logistic.C, logistic.class_weight",
        ),
        (
            {"family": "logistic", "random_forest.max_depth": "3"},
            "hyperparameter 'random_forest.max_depth' is not a parameter of family 'logistic'",
        ),
    ],
)
def test_bad_hyperparameters_are_refused(hyperparameters: dict[str, str], message: str) -> None:
    space = SearchSpace.for_family("logistic", "classification")
    with pytest.raises(ConfigError) as error:
        space.from_hyperparameters(hyperparameters)
    assert str(error.value).startswith(message)


def test_int_hyperparameters_must_be_whole_numbers() -> None:
    space = SearchSpace.for_family("random_forest", "regression")
    with pytest.raises(ConfigError, match=r"'random_forest\.max_depth' must be a whole number"):
        space.from_hyperparameters({"family": "random_forest", "random_forest.max_depth": "2.5"})


def test_a_container_family_of_the_wrong_task_names_the_hyperparameter() -> None:
    with pytest.raises(ConfigError) as error:
        SearchSpace.for_family("linear", "classification")
    assert str(error.value).startswith(
        "hyperparameter family: family 'linear' is for regression only"
    )


def test_every_family_default_range_is_valid() -> None:
    for name, family in FAMILIES.items():
        for task in family.tasks:
            if not family.needs_torch:
                assert set(SearchSpace.for_family(name, task).families[name]) == set(family.params)
