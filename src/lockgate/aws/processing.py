"""Data preparation too big for a Lambda: a SageMaker Processing job running the same image.

When the raw objects of a dataset total more than ``LOCKGATE_PROCESSING_MAX_BYTES``, the
data-prep Lambda calls :func:`hand_off` instead of preparing them: it starts a Processing job
on the data-prep image (``LOCKGATE_PROCESSING_IMAGE``) whose entrypoint is
``python -m lockgate.aws.processing``, and records its own run as handed off. The job runs
:func:`main`, the same preparation ``lockgate data prep`` does, and records that run.

The job is named after the data version it will make (``lockgate-<env>-prep-<version hash>``),
so a duplicate event finds the job already there and starts nothing. SageMaker never frees a
job's name, so a version whose job failed or was stopped gets a new attempt under
``<name>-r2``, ``-r3``... up to :data:`ATTEMPTS`.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from lockgate import logs
from lockgate.aws.errors import unanswered
from lockgate.config import DatasetConfig, load_settings
from lockgate.errors import ConfigError, LockgateError
from lockgate.pipelines.data.prepare import RECORDED_KEYS, PrepResult, prepare
from lockgate.pipelines.data.versions import MANIFEST, version_id, version_prefix
from lockgate.pipelines.runs import TRIGGER_ENV, Trigger, recorded_run
from lockgate.ports.store import ObjectInfo, Store

log = logging.getLogger("lockgate.aws.processing")

ENTRYPOINT = ["python", "-m", "lockgate.aws.processing"]
MAX_BYTES_ENV = "LOCKGATE_PROCESSING_MAX_BYTES"
IMAGE_ENV = "LOCKGATE_PROCESSING_IMAGE"
ROLE_ENV = "LOCKGATE_PROCESSING_ROLE_ARN"
INSTANCE_TYPE_ENV = "LOCKGATE_PROCESSING_INSTANCE_TYPE"
DEFAULT_INSTANCE_TYPE = "ml.m5.xlarge"
MAX_RUNTIME = 6 * 3600
"""Seconds a job may run before SageMaker stops it."""
ATTEMPTS = 5
"""Jobs started for one data version before its failures are left to a person."""
MIN_VOLUME_GB = 30
MAX_VOLUME_GB = 16384
ENV_VALUE_LIMIT = 256
"""SageMaker refuses environment values of 256 characters or more."""
HANDED_OFF = "handed_off"
"""The status of a :class:`PrepResult` whose preparation a Processing job does."""
VOLUME_DIR = Path("/opt/ml/processing")

_RUNNING = frozenset({"InProgress", "Stopping", "Completed"})
_DENIED = frozenset({"AccessDeniedException", "AccessDenied"})


class ProcessingError(LockgateError):
    """SageMaker refused or failed a Processing job; the message says what to do."""

    def __init__(self, message: str, code: str = "") -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class ProcessingSettings:
    """What the stack tells the data-prep Lambda about Processing jobs."""

    image: str
    role_arn: str
    instance_type: str = DEFAULT_INSTANCE_TYPE

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> ProcessingSettings:
        """Raises ConfigError when the image or the role is not set."""
        environ = os.environ if environ is None else environ
        image, role = environ.get(IMAGE_ENV, "").strip(), environ.get(ROLE_ENV, "").strip()
        if not image or not role:
            raise ConfigError(
                f"{MAX_BYTES_ENV} is set but {IMAGE_ENV} or {ROLE_ENV} is not: "
                "deploy the environment's stack again (lockgate aws deploy)"
            )
        instance = environ.get(INSTANCE_TYPE_ENV, "").strip() or DEFAULT_INSTANCE_TYPE
        return cls(image, role, instance)


@dataclass(frozen=True)
class ProcessingJob:
    """A Processing job preparing one data version."""

    name: str
    arn: str
    status: str
    started: bool
    """True: started now; False: an existing job for the same version was found."""


def max_bytes(environ: Mapping[str, str] | None = None) -> int | None:
    """The most raw bytes a Lambda prepares itself; None: no limit (nothing is handed off).

    Raises:
        ConfigError: the variable is not a whole number of bytes.
    """
    text = (os.environ if environ is None else environ).get(MAX_BYTES_ENV, "").strip()
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        raise ConfigError(f"{MAX_BYTES_ENV} '{text}' is not a number of bytes") from None


def job_name(env: str, version: str) -> str:
    """``lockgate-<env>-prep-<hash>``: the version id's hash, so a version has one job."""
    return f"lockgate-{env}-prep-{version.removeprefix('dv-')}"


def volume_size_gb(raw_bytes: int) -> int:
    """Room for one raw file's download, the parsed splits staged before upload, and slack."""
    return max(MIN_VOLUME_GB, min(MAX_VOLUME_GB, math.ceil(3 * raw_bytes / 1024**3) + 10))


def job_request(
    name: str,
    settings: ProcessingSettings,
    environment: Mapping[str, str],
    raw_bytes: int,
) -> dict[str, Any]:
    """The CreateProcessingJob request: the data-prep image with this module as entrypoint.

    ``environment`` carries names (store URI, config path, dataset), never a secret: the job's
    role grants what it reads.

    Raises:
        ProcessingError: a value is too long for SageMaker.
    """
    for key, value in environment.items():
        if len(value) >= ENV_VALUE_LIMIT:
            raise ProcessingError(
                f"{key} is {len(value)} characters, more than a SageMaker Processing job takes "
                f"({ENV_VALUE_LIMIT - 1}); use a shorter store URI or config path"
            )
    return {
        "ProcessingJobName": name,
        "ProcessingResources": {
            "ClusterConfig": {
                "InstanceCount": 1,
                "InstanceType": settings.instance_type,
                "VolumeSizeInGB": volume_size_gb(raw_bytes),
            }
        },
        "AppSpecification": {"ImageUri": settings.image, "ContainerEntrypoint": list(ENTRYPOINT)},
        "Environment": dict(environment),
        "RoleArn": settings.role_arn,
        "StoppingCondition": {"MaxRuntimeInSeconds": MAX_RUNTIME},
    }


class SageMakerProcessing:
    """The Processing job calls lockgate makes, through an injected boto3 SageMaker client."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def describe(self, name: str) -> dict[str, Any] | None:
        """The job's description; None if there is no job of that name."""
        try:
            response: dict[str, Any] = self._client.describe_processing_job(ProcessingJobName=name)
        except ClientError as exc:
            code, message = _error(exc)
            if code == "ResourceNotFound" or (
                code == "ValidationException" and "not find" in message
            ):
                return None
            raise _refused("DescribeProcessingJob", name, code, message) from exc
        except BotoCoreError as exc:
            raise _unanswered("DescribeProcessingJob", name, exc) from exc
        return response

    def start(self, request: Mapping[str, Any]) -> ProcessingJob:
        """Start the job ``request`` names, unless one for it runs or ran to completion.

        Raises:
            ProcessingError: SageMaker refused, or every attempt's job failed.
        """
        base = str(request["ProcessingJobName"])
        last: dict[str, Any] = {}
        for attempt in range(1, ATTEMPTS + 1):
            name = base if attempt == 1 else f"{base}-r{attempt}"
            found = self.describe(name)
            if found is None:
                try:
                    arn = self._client.create_processing_job(
                        **{**request, "ProcessingJobName": name}
                    )["ProcessingJobArn"]
                except ClientError as exc:
                    code, message = _error(exc)
                    if code != "ResourceInUse":
                        raise _refused("CreateProcessingJob", name, code, message) from exc
                    found = self.describe(name)  # a duplicate event created it first
                    if found is None:
                        raise _refused("CreateProcessingJob", name, code, message) from exc
                except BotoCoreError as exc:
                    raise _unanswered("CreateProcessingJob", name, exc) from exc
                else:
                    return ProcessingJob(name, str(arn), "InProgress", started=True)
            status = str(found.get("ProcessingJobStatus"))
            if status in _RUNNING:
                return ProcessingJob(name, str(found.get("ProcessingJobArn")), status, False)
            last = found  # Failed or Stopped: this version gets another attempt
        raise ProcessingError(
            f"{ATTEMPTS} Processing jobs for {base} failed, the last "
            f"({last.get('ProcessingJobName')}): {last.get('FailureReason') or 'no reason given'}; "
            "read its log in CloudWatch (/aws/sagemaker/ProcessingJobs), fix the cause, and "
            "run `lockgate data prep` for the dataset"
        )


def hand_off(
    store: Store,
    dataset: str,
    config: DatasetConfig,
    sources: Sequence[ObjectInfo],
    *,
    env: str,
    config_path: str,
    trigger: Trigger,
    client: Any | None = None,
    environ: Mapping[str, str] | None = None,
    image: str | None = None,
) -> PrepResult:
    """Have a Processing job prepare ``dataset`` from ``sources``; the run is recorded.

    A version already committed is not handed off: :func:`prepare` says it exists.

    Args:
        image: the image the job runs; default ``LOCKGATE_PROCESSING_IMAGE``. The Lambda passes
            the image it runs itself, which the workflow or image-sync may have moved past the
            stack's value, so both halves of a preparation run the same code.

    Raises:
        ConfigError: the Processing settings are missing from the environment.
        ProcessingError: SageMaker refused to start the job.
    """
    version = version_id(dataset, [(s.key, s.etag) for s in sources], config)
    if store.exists(version_prefix(dataset, version) + MANIFEST):
        return prepare(store, dataset, config, log.info, trigger=trigger)
    settings = ProcessingSettings.from_environment(environ)
    if image:
        settings = replace(settings, image=image)
    raw_bytes = sum(source.size for source in sources)
    inputs: dict[str, Any] = {
        "dataset": dataset,
        "raw_objects": len(sources),
        "raw_bytes": raw_bytes,
    }
    if len(sources) <= RECORDED_KEYS:
        inputs["raw_keys"] = [source.key for source in sources]
    name = job_name(env, version)
    with recorded_run(store, "data", trigger, inputs) as run:
        environment = {
            "LOCKGATE_STORE": store.uri,
            "LOCKGATE_ENV": env,
            "LOCKGATE_CONFIG": config_path,
            "LOCKGATE_DATASET": dataset,
            TRIGGER_ENV: f"lambda:{trigger.detail} via {name}"[: ENV_VALUE_LIMIT - 1],
        }
        sagemaker = client if client is not None else _client()
        region = getattr(getattr(sagemaker, "meta", None), "region_name", None)
        if region:
            environment["AWS_DEFAULT_REGION"] = region
        job = SageMakerProcessing(sagemaker).start(
            job_request(name, settings, environment, raw_bytes)
        )
        run.outputs = {
            "status": HANDED_OFF,
            "version": version,
            "processing_job": job.name,
            "processing_job_status": job.status,
            "started": job.started,
        }
    how = "started" if job.started else f"already there ({job.status})"
    gib = raw_bytes / 1024**3
    return PrepResult(
        dataset,
        HANDED_OFF,
        version,
        message=(
            f"{len(sources)} raw file(s), {gib:.2f} GiB, too big for the Lambda: "
            f"SageMaker Processing job {job.name} {how} prepares them"
        ),
    )


def _client() -> Any:
    session = boto3.session.Session()
    region = session.region_name or os.environ.get("AWS_REGION")
    return session.client("sagemaker", region_name=region)


def _error(exc: Any) -> tuple[str, str]:
    error = exc.response.get("Error", {})
    return str(error.get("Code", "")), " ".join(str(error.get("Message", "")).split())


def _refused(operation: str, name: str, code: str, message: str) -> ProcessingError:
    if code in _DENIED:
        hint = f"allow sagemaker:{operation} on processing-job/{name}" + (
            " and iam:PassRole on the SageMaker role" if operation.startswith("Create") else ""
        )
    else:
        hint = message or "see the AWS error code"
    return ProcessingError(f"SageMaker {operation} of {name} was refused ({code}): {hint}", code)


def _unanswered(operation: str, name: str, exc: BotoCoreError) -> ProcessingError:
    return ProcessingError(
        unanswered(
            exc,
            doing=f"for SageMaker {operation} of {name}",
            reach=f"SageMaker for {operation}",
            failed=f"SageMaker {operation} of {name}",
        )
    )


# -- the job's entrypoint --------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Prepare ``LOCKGATE_DATASET`` from every raw object, as ``lockgate data prep`` does.

    Returns the exit code: 0 when a version is committed (or was already), 1 otherwise, with
    one line on stderr saying why.
    """
    from lockgate.wiring import lean_arrow_memory, open_store

    logs.configure(
        json_stream=sys.stdout,
        terminal_level=None,
        pipeline="data",
        env=os.environ.get("LOCKGATE_ENV"),
    )
    lean_arrow_memory()
    _temp_on_volume()
    try:
        settings = load_settings()
        dataset, config = settings.dataset()
        store = open_store(settings.store_uri)
        trigger = Trigger.from_environment(default=Trigger("lambda", "processing job"))
        result = prepare(store, dataset, config, log.info, trigger=trigger)
    except LockgateError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # a bug or an outage: logged in full, one line for the job's log
        log.exception("data preparation failed")
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    if result.status not in ("committed", "exists"):
        print(f"error: {result.dataset}: {result.status}: {result.message}", file=sys.stderr)
        return 1
    print(f"{result.status} {result.dataset} {result.version}: {result.message}")
    return 0


def _temp_on_volume() -> None:
    """Scratch files on the job's storage volume (sized for the data) when it is mounted."""
    if not VOLUME_DIR.is_dir():
        return  # not in a Processing job: the default temp folder
    folder = VOLUME_DIR / "tmp"
    try:
        folder.mkdir(exist_ok=True)
    except OSError:
        return
    tempfile.tempdir = str(folder)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
