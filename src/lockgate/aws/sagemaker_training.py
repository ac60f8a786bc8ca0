"""A study's trials as SageMaker training jobs (the :class:`Compute` of an AWS environment).

The launcher runs where `lockgate train` runs and drives Optuna with ask and tell: it asks for
a trial, starts one training job for it with the trial's hyperparameters (the same strings the
local container gets), keeps up to ``workers`` jobs running, and tells Optuna each job's
outcome once SageMaker reports it:

- **Completed**: the metric is read from the job's output, ``output.tar.gz``, which holds the
  ``metrics.json`` the trial entrypoint wrote to ``/opt/ml/output/data`` (never from its logs).
- **Failed** or **Stopped**: a failed trial, with SageMaker's FailureReason as its error.

A trial's job name is kept on the trial (user attribute ``sagemaker_job``), so a launcher that
was killed leaves nothing behind: the next `lockgate train` of the same data version finds its
trials still running, follows their jobs to the end and tells Optuna. Ctrl-C (or SIGTERM from
`lockgate up`) stops the running jobs, so no instance is left billing, and records their
trials failed. Trials cannot be pruned: a job reports only at its end.

Job inputs: the data version's ``train`` and ``validation`` files as channels of the same
names, straight from the store's bucket; output under ``training/<study>/`` in the same
bucket, with a checkpoint folder per job. No secret goes into a request: the study's storage
URL stays with the launcher.
"""

from __future__ import annotations

import io
import json
import logging
import secrets
import tarfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import optuna
from botocore.exceptions import BotoCoreError, ClientError

from lockgate.aws.errors import unanswered
from lockgate.aws.sagemaker_endpoint import SageMakerError
from lockgate.pipelines.training.compute import Progress
from lockgate.pipelines.training.entrypoint import METRICS_FILE, trial_hyperparameters
from lockgate.pipelines.training.study import (
    ERROR_ATTR,
    StudyPlan,
    finished_count,
    open_storage,
    sampler_for,
)
from lockgate.ports.tracking import RunState, Tracker

log = logging.getLogger("lockgate.training")

JOB_ATTR = "sagemaker_job"
TOKEN_ATTR = "sagemaker_token"  # noqa: S105 - a study attribute's name, not a secret
CHANNELS = ("train", "validation")
OUTPUT_ARCHIVE = "output/output.tar.gz"
MISSING = "Missing"
_DONE = frozenset({"Completed", "Failed", "Stopped", MISSING})
_NOT_FOUND_CODES = frozenset({"ValidationException", "ResourceNotFound"})
_AUTH_CODES = frozenset(
    "AccessDenied AccessDeniedException ExpiredToken ExpiredTokenException "
    "InvalidClientTokenId UnrecognizedClientException".split()
)


@dataclass(frozen=True)
class JobSettings:
    """What every training job of an environment shares.

    Attributes:
        env: the environment, in job names and tags.
        image: the train/serve image, by digest for a reproducible study.
        role_arn: the execution role SageMaker assumes (reads the bucket, pulls the image).
        bucket: the environment store's bucket.
        prefix: the store's key prefix in the bucket ("" or ``"team/"``).
        instance_type: one instance per trial.
        volume_gb: the job's storage volume.
        max_run_seconds: a job's run-time limit.
        spot: managed spot training; a job may then wait as long again for capacity.
    """

    env: str
    image: str
    role_arn: str
    bucket: str
    prefix: str = ""
    instance_type: str = "ml.m5.large"
    volume_gb: int = 30
    max_run_seconds: int = 3600
    spot: bool = False

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{self.prefix}{key}"


def job_name(env: str, token: str, number: int) -> str:
    """``lockgate-<env>-<study token>-t<trial>``: unique per trial, at most 63 characters.

    The token is drawn once per study and kept in it (:func:`study_token`): a study deleted and
    created again under the same name gets new job names, so it never mistakes an old job's
    output for its own.
    """
    return f"lockgate-{env}-{token}-t{number:05d}"[:63]


def study_token(study: optuna.Study) -> str:
    """The study's job-name token: 8 hex characters, drawn on first use and kept."""
    token = study.user_attrs.get(TOKEN_ATTR)
    if not token:
        token = secrets.token_hex(4)
        study.set_user_attr(TOKEN_ATTR, token)
    return str(token)


def training_job_request(
    settings: JobSettings,
    plan: StudyPlan,
    name: str,
    number: int,
    hyperparameters: Mapping[str, str],
) -> dict[str, Any]:
    """The CreateTrainingJob request named ``name`` of trial ``number`` of ``plan``."""
    output = f"training/{plan.study_name}/"
    request: dict[str, Any] = {
        "TrainingJobName": name,
        "AlgorithmSpecification": {
            "TrainingImage": settings.image,
            "TrainingInputMode": "File",
        },
        "RoleArn": settings.role_arn,
        "HyperParameters": dict(hyperparameters),
        "InputDataConfig": [
            {
                "ChannelName": channel,
                "DataSource": {
                    "S3DataSource": {
                        "S3DataType": "S3Prefix",
                        # The split's one file: the channel folder holds exactly it.
                        "S3Uri": settings.uri(f"{plan.data_prefix}{channel}.safetensors"),
                        "S3DataDistributionType": "FullyReplicated",
                    }
                },
                "InputMode": "File",
            }
            for channel in CHANNELS
        ],
        "OutputDataConfig": {"S3OutputPath": settings.uri(output)},
        "ResourceConfig": {
            "InstanceType": settings.instance_type,
            "InstanceCount": 1,
            "VolumeSizeInGB": settings.volume_gb,
        },
        "StoppingCondition": {"MaxRuntimeInSeconds": settings.max_run_seconds},
        "CheckpointConfig": {"S3Uri": settings.uri(f"{output}checkpoints/{name}/")},
        "EnableManagedSpotTraining": settings.spot,
        "Tags": [
            {"Key": "lockgate:env", "Value": settings.env},
            {"Key": "lockgate:study", "Value": plan.study_name[:256]},
            {"Key": "lockgate:trial", "Value": str(number)},
        ],
    }
    if settings.spot:
        request["StoppingCondition"]["MaxWaitTimeInSeconds"] = 2 * settings.max_run_seconds
    return request


@dataclass(frozen=True)
class JobState:
    """What DescribeTrainingJob said of a job."""

    name: str
    status: str
    """InProgress, Completed, Failed, Stopping or Stopped."""
    failure_reason: str | None = None
    secondary: str | None = None

    @property
    def done(self) -> bool:
        return self.status in _DONE


class TrainingJobs:
    """SageMaker's training-job calls, with botocore's errors as :class:`SageMakerError`."""

    def __init__(self, sagemaker: Any, s3: Any) -> None:
        """Args: boto3 ``sagemaker`` and ``s3`` clients (tests pass moto- or Stubber-backed)."""
        self._sagemaker = sagemaker
        self._s3 = s3

    def create(self, request: Mapping[str, Any]) -> None:
        """Start the job; a job of that name already there (a retried create) is kept."""
        try:
            self._call("create_training_job", **request)
        except SageMakerError as exc:
            if exc.code == "ResourceInUse" or "already exist" in str(exc):
                return
            raise

    def describe(self, name: str) -> JobState:
        """The job's state; ``Missing`` when SageMaker has no such job (a launcher stopped
        between asking Optuna for the trial and creating its job)."""
        try:
            answer = self._call("describe_training_job", TrainingJobName=name)
        except SageMakerError as exc:
            if exc.code in _NOT_FOUND_CODES and "not found" in str(exc).lower():
                return JobState(name, MISSING, "the training job was never created")
            raise
        return JobState(
            name=name,
            status=str(answer.get("TrainingJobStatus", "")),
            failure_reason=answer.get("FailureReason"),
            secondary=answer.get("SecondaryStatus"),
        )

    def stop(self, name: str) -> None:
        """Ask SageMaker to stop the job; one that already ended is left as it is."""
        try:
            self._call("stop_training_job", TrainingJobName=name)
        except SageMakerError as exc:
            log.warning("could not stop training job %s: %s", name, exc)

    def metrics(self, bucket: str, key: str) -> dict[str, Any]:
        """The ``metrics.json`` inside the job's ``output.tar.gz`` at ``bucket``/``key``.

        Raises:
            SageMakerError: the archive is missing or holds no readable metrics.json.
        """
        try:
            body = self._s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            raise SageMakerError(
                f"the job's output s3://{bucket}/{key} cannot be read ({code}): the image must "
                "be lockgate's train/serve image, which writes metrics.json to "
                "/opt/ml/output/data",
                code,
            ) from exc
        except BotoCoreError as exc:
            raise SageMakerError(
                unanswered(
                    exc, doing="to read training output", reach="S3", failed=f"reading {key}"
                )
            ) from exc
        try:
            with tarfile.open(fileobj=io.BytesIO(body), mode="r:gz") as archive:
                member = archive.extractfile(METRICS_FILE)
                if member is None:
                    raise KeyError(METRICS_FILE)
                document: dict[str, Any] = json.loads(member.read())
        except (KeyError, tarfile.TarError, OSError, ValueError) as exc:
            raise SageMakerError(
                f"s3://{bucket}/{key} holds no readable {METRICS_FILE}: {exc}"
            ) from None
        return document

    def _call(self, operation: str, **params: Any) -> dict[str, Any]:
        try:
            answer: dict[str, Any] = getattr(self._sagemaker, operation)(**params)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code = str(error.get("Code", ""))
            message = " ".join(str(error.get("Message", "")).split())
            call = "".join(part.title() for part in operation.split("_"))
            if code in _AUTH_CODES:
                raise SageMakerError(
                    f"SageMaker {call} was refused ({code}): check the AWS credentials and "
                    f"that they allow sagemaker:{call} and iam:PassRole of the execution role",
                    code,
                ) from exc
            hint = ""
            if code == "ResourceLimitExceeded":
                hint = " (lower --workers, or raise the account's training-job quota)"
            raise SageMakerError(f"SageMaker {call} failed: {code} {message}{hint}", code) from exc
        except BotoCoreError as exc:
            raise SageMakerError(
                unanswered(
                    exc,
                    doing="to start training jobs",
                    reach="SageMaker",
                    failed=f"SageMaker {operation}",
                )
            ) from exc
        return answer


class SageMakerTraining:
    """Implements :class:`lockgate.pipelines.training.compute.Compute` with training jobs."""

    def __init__(
        self,
        jobs: TrainingJobs,
        settings: JobSettings,
        *,
        poll_seconds: float = 15.0,
        say: Callable[[str], None] = lambda _message: None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.jobs = jobs
        self.settings = settings
        self.poll_seconds = poll_seconds
        self.say = say
        self._sleep = sleep
        self._clock = clock

    def run_trials(self, plan: StudyPlan, workers: int, progress: Progress | None = None) -> None:
        """Keep ``workers`` jobs running until the budget is spent or the deadline passes."""
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        study = optuna.load_study(
            study_name=plan.study_name,
            storage=open_storage(plan.storage),
            sampler=sampler_for(plan, 0),
        )
        tracker = plan.tracker_factory() if plan.tracker_factory is not None else None
        token = study_token(study)
        running = self._adopt(study)
        try:
            while True:
                while len(running) < workers and self._may_start(plan, study, running):
                    name, number = self._start(plan, study, tracker, token)
                    running[name] = number
                if not running:
                    break
                self._sleep(self.poll_seconds)
                for name, number in list(running.items()):
                    state = self.jobs.describe(name)
                    if state.done:
                        self._finish(plan, study, tracker, number, state)
                        del running[name]
                if progress is not None:
                    progress(study)
        except BaseException:
            # Ctrl-C, SIGTERM or an error of ours: nothing may go on billing unseen.
            for name, number in running.items():
                self.jobs.stop(name)
                self._tell_failed(study, number, "stopped: the study was interrupted")
            raise

    def _may_start(self, plan: StudyPlan, study: optuna.Study, running: dict[str, int]) -> bool:
        if finished_count(study) + len(running) >= plan.trials:
            return False
        return plan.deadline is None or self._clock() < plan.deadline

    def _adopt(self, study: optuna.Study) -> dict[str, int]:
        """Running trials with a job: a launcher that was killed left them to this one."""
        adopted = {}
        for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
            name = trial.user_attrs.get(JOB_ATTR)
            if name:
                adopted[str(name)] = trial.number
                self.say(f"trial {trial.number}: following job {name}, still running")
        return adopted

    def _start(
        self, plan: StudyPlan, study: optuna.Study, tracker: Tracker | None, token: str
    ) -> tuple[str, int]:
        trial = study.ask()
        params = plan.space.suggest(trial)
        name = job_name(self.settings.env, token, trial.number)
        trial.set_user_attr("family", str(params["family"]))
        trial.set_user_attr(JOB_ATTR, name)
        if tracker is not None and plan.parent_run_id is not None:
            run_id = tracker.start_trial(plan.parent_run_id, trial.number, params, dict(plan.tags))
            trial.set_user_attr("run_id", run_id)
        hyperparameters = trial_hyperparameters(
            plan.space, params, plan.metric, plan.seed, plan.classes
        )
        try:
            self.jobs.create(
                training_job_request(self.settings, plan, name, trial.number, hyperparameters)
            )
        except SageMakerError as exc:
            self._tell_failed(study, trial.number, str(exc))
            self._log(tracker, trial.user_attrs.get("run_id"), {}, {}, "FAILED", str(exc))
            raise
        self.say(f"trial {trial.number}: training job {name} started ({params['family']})")
        return name, trial.number

    def _finish(
        self,
        plan: StudyPlan,
        study: optuna.Study,
        tracker: Tracker | None,
        number: int,
        state: JobState,
    ) -> None:
        trial = _trial(study, number)
        run_id = trial.user_attrs.get("run_id")
        if state.status != "Completed":
            reason = state.failure_reason or f"the training job was {state.status.lower()}"
            self._tell_failed(study, number, f"{state.name}: {reason}")
            self._log(tracker, run_id, {}, {}, "FAILED", reason)
            self.say(f"trial {number}: job {state.name} {state.status.lower()}: {reason}")
            return
        key = f"{self.settings.prefix}training/{plan.study_name}/{state.name}/{OUTPUT_ARCHIVE}"
        try:
            metrics = self.jobs.metrics(self.settings.bucket, key)
            value = float(metrics[plan.metric])
        except (SageMakerError, KeyError, TypeError, ValueError) as exc:
            reason = f"no {plan.metric} in the job's output: {exc}"
            self._tell_failed(study, number, f"{state.name}: {reason}")
            self._log(tracker, run_id, {}, {}, "FAILED", reason)
            return
        seconds = float(metrics.get("seconds", 0.0))
        storage = study._storage
        storage.set_trial_user_attr(trial._trial_id, "seconds", round(seconds, 4))
        study.tell(number, value)
        series = {
            plan.metric: [
                float(step[plan.metric])
                for step in metrics.get("history", [])
                if plan.metric in step
            ]
        }
        self._log(
            tracker, run_id, {plan.metric: value, "seconds": seconds}, series, "FINISHED", None
        )
        self.say(f"trial {number}: {plan.metric}={value:.4f} ({state.name})")

    def _tell_failed(self, study: optuna.Study, number: int, reason: str) -> None:
        trial = _trial(study, number)
        if trial.state != optuna.trial.TrialState.RUNNING:
            return
        study._storage.set_trial_user_attr(trial._trial_id, ERROR_ATTR, reason)
        study.tell(number, state=optuna.trial.TrialState.FAIL)

    @staticmethod
    def _log(
        tracker: Tracker | None,
        run_id: Any,
        metrics: dict[str, float],
        series: dict[str, list[float]],
        state: RunState,
        error: str | None,
    ) -> None:
        if tracker is not None and run_id:
            tracker.log_trial(str(run_id), metrics, series, state, error)


def _trial(study: optuna.Study, number: int) -> optuna.trial.FrozenTrial:
    """Trial ``number`` alone: ``study.trials`` would copy every trial of the study (from the
    database, for RDB storage) each time a job ends."""
    storage = study._storage
    trial_id = storage.get_trial_id_from_study_id_trial_number(study._study_id, number)
    return storage.get_trial(trial_id)
