"""Configuration: one precedence everywhere.

A setting comes from the first of: a CLI flag, a ``LOCKGATE_*`` environment variable,
``lockgate.toml``, the default below. The models are pydantic so a typo in lockgate.toml
is reported with the table and key it is in, not discovered later.
"""

from __future__ import annotations

import getpass
import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from lockgate.config_aws import AwsConfig, TrainingConfig
from lockgate.config_local import LogsConfig, RuntimeConfig
from lockgate.errors import ConfigError

ColumnKind = Literal["numeric", "categorical", "text", "datetime", "id"]
Task = Literal["classification", "regression"]

DEFAULT_CONFIG = "lockgate.toml"
DEFAULT_ENV = "dev"
ENV_PREFIX = "LOCKGATE_"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PrepConfig(_Strict):
    """How the data pipeline turns raw files into a dataset version.

    Every field takes part in the data version id: changing one prepares a new version.
    """

    seed: int = 42
    validation_fraction: float = Field(0.15, ge=0.0, lt=1.0)
    test_fraction: float = Field(0.15, ge=0.0, lt=1.0)
    max_invalid_fraction: float = Field(
        0.01, ge=0.0, le=1.0, description="share of unparseable values a column may have"
    )
    rare_min_frequency: float = Field(
        0.001, ge=0.0, lt=1.0, description="categories rarer than this share go to __other__"
    )
    max_categories: int = Field(50, ge=1, description="one-hot columns per categorical feature")
    text_max_features: int = Field(128, ge=1, description="TF-IDF width per text column")
    text_fit_rows: int = Field(100_000, ge=1, description="rows sampled to fit a TF-IDF vocabulary")
    histogram_bins: int = Field(20, ge=2, le=1000)

    @model_validator(mode="after")
    def _fractions_leave_training_rows(self) -> PrepConfig:
        if self.validation_fraction + self.test_fraction >= 1.0:
            raise ValueError("validation_fraction + test_fraction must be below 1")
        return self


class DatasetConfig(_Strict):
    """One dataset: its target, the kind of every column, how to prepare it."""

    target: str
    task: Task = "classification"
    columns: dict[str, ColumnKind]
    prep: PrepConfig = PrepConfig()

    @model_validator(mode="after")
    def _target_is_not_a_feature(self) -> DatasetConfig:
        if self.target in self.columns:
            raise ValueError(f"target '{self.target}' must not also be listed under columns")
        if not any(kind != "id" for kind in self.columns.values()):
            raise ValueError("at least one feature column (not 'id') is needed")
        return self

    @property
    def feature_columns(self) -> dict[str, ColumnKind]:
        return {name: kind for name, kind in self.columns.items() if kind != "id"}


DEFAULT_ENVS = ("dev", "staging", "prod")
"""The environments, in promotion order, when lockgate.toml names none."""
DEFAULT_PORTS = {"dev": 8080, "staging": 8081, "prod": 8082}


class GatesConfig(_Strict):
    """What a model version must pass before it is promoted into an environment.

    Checked at promotion; any failure refuses the promotion and changes nothing.
    """

    approval: bool = Field(False, description="an approval for this environment is required")
    approver_not_trainer: bool = Field(
        False, description="the approval must come from someone other than who trained it"
    )
    min_metrics: dict[str, float] = Field(
        {}, description="test metric -> lowest allowed value (e.g. roc_auc = 0.8)"
    )
    max_metrics: dict[str, float] = Field(
        {}, description="test metric -> highest allowed value (e.g. rmse = 12.5)"
    )
    max_regression: float | None = Field(
        None,
        ge=0.0,
        description="how much worse than the environment's current champion the candidate may "
        "score on the same test data (the training metric); unset: no comparison",
    )
    served_in: str | None = Field(
        None, description="an environment the same package must have been released to first"
    )
    min_served_hours: float = Field(0.0, ge=0.0, description="hours it must have served there")
    min_served_requests: int = Field(
        0, ge=0, description="requests it must have answered there, with no server errors"
    )

    @classmethod
    def default_for(cls, env: str, before: str | None = "staging") -> GatesConfig:
        """dev: none; staging: an approval; prod (and any other name): an approval by someone
        other than the trainer, after answering requests in ``before`` (the environment ahead
        of it in promotion order) without a server error."""
        if env == "dev":
            return cls()
        if env == "staging" or before is None:
            return cls(approval=True)
        return cls(
            approval=True, approver_not_trainer=True, served_in=before, min_served_requests=1
        )


class EndpointConfig(_Strict):
    """An environment's endpoint: the local server's address, capture, and SageMaker's sizing."""

    kind: Literal["local", "sagemaker"] = Field(
        "local", description="local: a uvicorn server on this machine; sagemaker: an endpoint"
    )
    name: str | None = Field(None, description="endpoint name; default lockgate-<env>")
    host: str = "127.0.0.1"
    port: int | None = Field(
        None,
        ge=0,
        le=65535,
        description="default 8080 (dev), 8081 (staging), 8082 (prod), 8090 + position (others); "
        "0: any free port (`lockgate status` shows which)",
    )
    capture_percent: float = Field(
        100.0, ge=0.0, le=100.0, description="share of requests written to data capture"
    )
    max_body_bytes: int = Field(
        6 * 1024 * 1024, ge=1, description="largest request body (SageMaker's limit is 6 MB)"
    )
    image: str | None = Field(None, description="sagemaker: the serving image URI in ECR")
    role_arn: str | None = Field(None, description="sagemaker: the execution role")
    instance_type: str = "ml.m5.large"
    instance_count: int = Field(1, ge=1)


class EnvConfig(_Strict):
    """One environment (dev, staging, prod, ...): its store, tracking, endpoint and gates."""

    store: str | None = None
    tracking_uri: str | None = Field(
        None, description="MLflow URI of this environment; default train.tracking_uri"
    )
    endpoint: EndpointConfig = EndpointConfig()
    gates: GatesConfig | None = Field(None, description="default: see GatesConfig.default_for")
    aws: AwsConfig = AwsConfig()
    training: TrainingConfig = TrainingConfig()


ParamRange = list[float | int | str] | list[str]
"""``[low, high]``, ``[low, high, "log"]`` (numbers) or ``["a", "b", ...]`` (choices)."""


class TrainConfig(_Strict):
    """The training pipeline: what to optimise, over which model families, how long.

    ``families`` maps a family name (``logistic``, ``linear``, ``hist_gradient_boosting``,
    ``random_forest``, ``mlp``) to its parameter ranges; a family listed with no ranges uses
    its defaults, and an empty ``families`` table means the task's default families.
    """

    metric: str | None = Field(None, description="default: roc_auc (classification), rmse")
    trials: int = Field(20, ge=1)
    workers: int = Field(1, ge=1)
    timeout: str | None = Field(None, description='wall-clock budget, e.g. "15m", "90s", "1h"')
    seed: int = 42
    sampler: Literal["tpe", "random"] = "tpe"
    pruning: bool = True
    families: dict[str, dict[str, ParamRange]] = {}
    storage: str | None = Field(None, description="Optuna RDB URL; default a journal file")
    tracking_uri: str | None = Field(None, description="MLflow URI; default SQLite in .lockgate")
    model_name: str | None = Field(None, description="registered model name; default dataset")
    on_new_data: bool = False


class DriftConfig(_Strict):
    """How data drift is judged (per feature, then for the dataset)."""

    alpha: float = Field(
        0.05, gt=0.0, lt=1.0, description="false discovery rate across features (BH)"
    )
    min_effect_numeric: float = Field(
        0.1,
        ge=0.0,
        description="smallest Wasserstein distance, in reference standard deviations, "
        "that counts as drift",
    )
    min_effect_categorical: float = Field(
        0.1, ge=0.0, le=1.0, description="smallest Jensen-Shannon distance that counts as drift"
    )
    share_threshold: float = Field(
        0.5, gt=0.0, le=1.0, description="dataset drift: share of drifted features at least this"
    )
    weight_by_importance: bool = Field(
        False, description="weight the share by the model's feature importance"
    )


class MonitorConfig(_Strict):
    """The monitoring pipeline: when it runs, what it judges, whom it tells."""

    schedule: str = Field(
        "rate(14 days)", description="EventBridge rate(...) or cron(...) expression"
    )
    window: str = Field("14d", description="how far back captured traffic is read")
    min_rows: int = Field(100, ge=1, description="fewer captured rows: no verdict, a warning")
    drift: DriftConfig = DriftConfig()
    max_null_increase: float = Field(
        0.1, ge=0.0, le=1.0, description="completeness may drop this much below the baseline"
    )
    max_unseen_share: float = Field(
        0.05, ge=0.0, le=1.0, description="share of values in categories the baseline never saw"
    )
    quality_tolerance: float = Field(
        0.05, ge=0.0, description="a labelled metric may be this much worse than at release"
    )
    webhook_url: str | None = Field(None, description="POSTed a JSON alert on violation")
    sns_topic_arn: str | None = Field(None, description="AWS: published to on violation")
    retrain_on_drift: bool = Field(
        False, description="on drift, request a study on the latest data version"
    )


class FileConfig(_Strict):
    """What lockgate.toml may contain."""

    default_dataset: str | None = None
    datasets: dict[str, DatasetConfig] = {}
    envs: dict[str, EnvConfig] = {}
    runtime: RuntimeConfig = RuntimeConfig()
    train: TrainConfig = TrainConfig()
    monitor: MonitorConfig = MonitorConfig()
    logs: LogsConfig = LogsConfig()

    @field_validator("envs")
    @classmethod
    def _env_names_are_keys(cls, value: dict[str, EnvConfig]) -> dict[str, EnvConfig]:
        for name in value:
            if not name or not all(ch.isalnum() or ch in "-_" for ch in name):
                raise ValueError(f"environment name '{name}' may use letters, digits, - and _")
        return value

    @field_validator("datasets")
    @classmethod
    def _dataset_names_are_keys(cls, value: dict[str, DatasetConfig]) -> dict[str, DatasetConfig]:
        for name in value:
            if not name or "/" in name or name.startswith("."):
                raise ValueError(f"dataset name '{name}' cannot be used as a store prefix")
        return value


class Settings(BaseModel):
    """Resolved settings for one command: the file's content plus the overrides in force."""

    model_config = ConfigDict(frozen=True)

    env: str = DEFAULT_ENV
    config_path: Path
    file: FileConfig = FileConfig()
    store_override: str | None = None
    dataset_override: str | None = None

    @property
    def root(self) -> Path:
        """The folder relative paths in lockgate.toml are taken from."""
        return self.config_path.resolve().parent

    @property
    def store_uri(self) -> str:
        """The current environment's store URI (the embedded default is a local folder)."""
        if self.store_override:
            return _absolute_file_uri(self.store_override, self.root)
        env = self.file.envs.get(self.env)
        if env is not None and env.store:
            return _absolute_file_uri(env.store, self.root)
        return (self.root / ".lockgate" / self.env / "store").as_uri()

    @property
    def datasets(self) -> dict[str, DatasetConfig]:
        return self.file.datasets

    @property
    def env_names(self) -> list[str]:
        """The environments in promotion order: lockgate.toml's, else dev, staging, prod."""
        return list(self.file.envs) or list(DEFAULT_ENVS)

    def env_config(self, env: str | None = None) -> EnvConfig:
        """The configuration of ``env`` (default: the current one).

        Raises:
            ConfigError: lockgate.toml names its environments and ``env`` is not one of them.
        """
        env = env or self.env
        if env in self.file.envs:
            return self.file.envs[env]
        if self.file.envs and env != self.env:
            raise ConfigError(
                f"environment '{env}' is not in {self.config_path} "
                f"(configured: {', '.join(self.file.envs)})"
            )
        return EnvConfig()

    def gates(self, env: str) -> GatesConfig:
        """The gates of ``env``: lockgate.toml's, else the defaults for its name."""
        configured = self.env_config(env).gates
        if configured is not None:
            return configured
        names = self.env_names
        if env == "prod" and "staging" in names:
            before: str | None = "staging"
        elif env in names and names.index(env) > 0:
            before = names[names.index(env) - 1]
        else:
            before = None
        return GatesConfig.default_for(env, before)

    def endpoint_name(self, env: str | None = None) -> str:
        env = env or self.env
        return self.env_config(env).endpoint.name or f"lockgate-{env}"

    def endpoint_port(self, env: str | None = None) -> int:
        env = env or self.env
        configured = self.env_config(env).endpoint.port
        if configured is not None:
            return configured
        if env in DEFAULT_PORTS:
            return DEFAULT_PORTS[env]
        # Other names count on from 8090, clear of the three defaults.
        return 8090 + (self.env_names.index(env) if env in self.env_names else 0)

    def for_env(self, env: str) -> Settings:
        """These settings for another environment (a ``--store`` override stays with its own)."""
        if env == self.env:
            return self
        self.env_config(env)  # an unknown environment is refused here, by name
        return self.model_copy(update={"env": env, "store_override": None})

    @property
    def tracking_uri(self) -> str | None:
        """This environment's MLflow URI, else ``train.tracking_uri``; None: the embedded one."""
        return self.env_config().tracking_uri or self.file.train.tracking_uri

    @property
    def env_dir(self) -> Path:
        """This environment's local working folder (journal, tracking database, work trees)."""
        return self.root / ".lockgate" / self.env

    def dataset(self, name: str | None = None) -> tuple[str, DatasetConfig]:
        """The named dataset, else the override, the default, or the only one configured."""
        name = name or self.dataset_override or self.file.default_dataset
        if name is None:
            if len(self.datasets) == 1:
                name = next(iter(self.datasets))
            elif not self.datasets:
                raise ConfigError(
                    f"no dataset is configured in {self.config_path}; "
                    "run `lockgate init --dataset NAME --from FILE --target COLUMN`"
                )
            else:
                raise ConfigError(
                    f"several datasets are configured ({', '.join(sorted(self.datasets))}); "
                    "pick one with --dataset"
                )
        try:
            return name, self.datasets[name]
        except KeyError:
            known = ", ".join(sorted(self.datasets)) or "none"
            raise ConfigError(
                f"dataset '{name}' is not in {self.config_path} (configured: {known})"
            ) from None


def _absolute_file_uri(uri: str, root: Path) -> str:
    """Resolve a relative ``file://`` URI or a bare path against the config's folder."""
    if "://" not in uri:
        path = Path(uri).expanduser()
        return (path if path.is_absolute() else root / path).resolve().as_uri()
    if uri.startswith("file://"):
        rest = uri[len("file://") :]
        path = Path(rest).expanduser()
        return (path if path.is_absolute() else root / path).resolve().as_uri()
    return uri


def load_settings(
    config: str | Path | None = None,
    env: str | None = None,
    store: str | None = None,
    dataset: str | None = None,
    environ: dict[str, str] | None = None,
) -> Settings:
    """Resolve settings with lockgate's precedence: argument, ``LOCKGATE_*``, file, default.

    Raises:
        ConfigError: the file cannot be parsed or has an invalid value; the message names it.
    """
    environ = dict(os.environ) if environ is None else environ
    path = config_path(config, environ)
    file_config = read_config_file(path)
    return Settings(
        env=env or environ.get(ENV_PREFIX + "ENV") or DEFAULT_ENV,
        config_path=path,
        file=file_config,
        store_override=store or environ.get(ENV_PREFIX + "STORE") or None,
        dataset_override=dataset or environ.get(ENV_PREFIX + "DATASET") or None,
    )


def config_path(config: str | Path | None = None, environ: dict[str, str] | None = None) -> Path:
    """Where lockgate.toml is: the flag, else ``LOCKGATE_CONFIG``, else ./lockgate.toml."""
    environ = dict(os.environ) if environ is None else environ
    return Path(config or environ.get(ENV_PREFIX + "CONFIG") or DEFAULT_CONFIG)


def read_config_file(path: Path) -> FileConfig:
    """Parse lockgate.toml; a missing file means every default."""
    if not path.exists():
        return FileConfig()
    try:
        raw: dict[str, Any] = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None
    try:
        return FileConfig.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise ConfigError(
            f"{path}: {where}: {first['msg']} ({exc.error_count()} problem(s) in all)"
        ) from None


def current_user(environ: dict[str, str] | None = None) -> str:
    """Who is acting, for approvals and release records: ``LOCKGATE_USER``, else the login."""
    environ = dict(os.environ) if environ is None else environ
    named = environ.get(ENV_PREFIX + "USER", "").strip()
    if named:
        return named
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no login name (some containers): say so rather than guess
        return "unknown"
