"""A SageMaker real-time endpoint serving lockgate model packages.

``deploy`` turns the verified package folder into ``model.tar.gz`` (its files at the archive
root, which SageMaker unpacks into ``/opt/ml/model``), uploads it beside the package in the
store, creates a model and an endpoint configuration, then creates or updates the endpoint and
waits until it serves or fails. SageMaker's update is blue/green: the new fleet takes traffic
only once healthy, and a failed update leaves the old configuration serving.

Names are derived from what they contain, so a deploy is idempotent and can be repeated after a
timeout or a crash: the model and the endpoint configuration are named
``<endpoint>-v<version>-<sha8>-<settings>``, where ``sha8`` starts the package sha256 and
``settings`` digests the image, role and sizing (SageMaker models and configurations are
immutable, so a changed image must get a new name). Data capture writes to
``<store>/monitoring/capture/<endpoint>/<variant>/YYYY/MM/DD/HH/``, the layout the local server
uses, so monitoring reads both the same way.
"""

from __future__ import annotations

import hashlib
import re
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
)

from lockgate.aws.errors import unanswered
from lockgate.errors import ConfigError, IntegrityError, LockgateError
from lockgate.pipelines.training.archive import write_model_archive
from lockgate.pipelines.training.package import package_sha256
from lockgate.ports.endpoint import Deployment, DeploymentFailed, DeployRequest, EndpointState
from lockgate.ports.store import Store

if TYPE_CHECKING:
    from lockgate.ports.endpoint import Endpoint

MODEL_ARCHIVE = "model.tar.gz"
VARIANT = "AllTraffic"
SHA_TAG = "lockgate:package-sha256"
MODEL_TAG = "lockgate:model"
VERSION_TAG = "lockgate:version"

_NAME = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}")
_NOT_TAG_TEXT = re.compile(r"[^\w\s.:/=+\-@]")
_STATES: dict[str, EndpointState] = {
    "InService": "serving",
    "Creating": "creating",
    "Updating": "updating",
    "SystemUpdating": "updating",
    "RollingBack": "updating",
    "Failed": "failed",
    "UpdateRollbackFailed": "failed",
    "OutOfService": "not_running",
    "Deleting": "not_running",
}
_IN_PROGRESS = frozenset({"Creating", "Updating", "SystemUpdating", "RollingBack"})
_AUTH_CODES = frozenset(
    "AccessDenied AccessDeniedException ExpiredToken ExpiredTokenException InvalidClientTokenId "
    "InvalidSignatureException MissingAuthenticationToken NotAuthorized SignatureDoesNotMatch "
    "UnrecognizedClientException".split()
)
_HINTS = {
    "ResourceLimitExceeded": "raise the account's SageMaker quota or choose another instance_type",
    "ThrottlingException": "SageMaker is throttling this account; deploy again in a minute",
}


class SageMakerError(LockgateError):
    """SageMaker refused or failed a call; the message names the call and the AWS error code."""

    def __init__(self, message: str, code: str = "") -> None:
        super().__init__(message)
        self.code = code
        """The AWS error code ("" when the call never got an answer)."""


class DeploymentTimedOut(SageMakerError):
    """The endpoint did not finish creating or updating in time; SageMaker carries on."""


class SageMakerEndpoint:
    """An environment's SageMaker real-time endpoint (one ``AllTraffic`` variant).

    Implements :class:`lockgate.ports.endpoint.Endpoint`. Every botocore error becomes a
    :class:`SageMakerError` naming the call and the AWS error code.
    """

    def __init__(
        self,
        client: Any,
        store: Store,
        *,
        endpoint_name: str,
        image_uri: str,
        role_arn: str,
        instance_type: str = "ml.m5.large",
        instance_count: int = 1,
        capture_percent: float = 100.0,
        capture_prefix: str = "monitoring/capture",
        poll_seconds: float = 15.0,
        timeout_seconds: float = 1800.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Describe the endpoint; no request is sent until ``deploy`` or ``status``.

        Args:
            client: a boto3 SageMaker client.
            store: the environment's S3 store; model archives and data capture go in its bucket.
            endpoint_name: the SageMaker endpoint name.
            image_uri: the serving image (ECR URI, by digest for a reproducible release).
            role_arn: the execution role SageMaker assumes to pull the image and read the
                archive (and write data capture).
            instance_type: the instance type of the variant.
            instance_count: how many instances serve.
            capture_percent: share of requests captured. SageMaker samples whole percents:
                the value is rounded, and any share above 0 captures at least 1 %.
            capture_prefix: the store prefix data capture is written under.
            poll_seconds: time between two ``DescribeEndpoint`` calls while waiting.
            timeout_seconds: how long ``deploy`` waits for the endpoint to serve.
            sleep: waits between polls; clock: monotonic seconds (both injected by tests).

        Raises:
            ConfigError: the name cannot name a SageMaker endpoint, the store is not on S3,
                or a size is out of range.
        """
        if not _NAME.fullmatch(endpoint_name):
            raise ConfigError(
                f"'{endpoint_name}' cannot name a SageMaker endpoint: use at most 63 letters, "
                "digits and '-', starting and ending with a letter or digit (set the "
                "environment's endpoint.name in lockgate.toml)"
            )
        if not store.uri.startswith("s3://"):
            raise ConfigError(
                f"a SageMaker endpoint reads its model from S3, but the store is {store.uri}; "
                "set the environment's store to an s3:// URI"
            )
        if instance_count < 1 or not 0.0 <= capture_percent <= 100.0:
            raise ConfigError("instance_count must be at least 1 and capture_percent 0 to 100")
        self._client = client
        self._store = store
        self.endpoint_name = endpoint_name
        self.image_uri = image_uri
        self.role_arn = role_arn
        self.instance_type = instance_type
        self.instance_count = instance_count
        self.sampling_percent = 0 if capture_percent <= 0 else max(1, round(capture_percent))
        """The whole percent of requests SageMaker captures."""
        self.capture_uri = f"s3://{store.bucket}/{store.prefix}{capture_prefix.strip('/')}"
        """Where data capture goes; SageMaker adds ``<endpoint>/<variant>/YYYY/MM/DD/HH/``."""
        self._poll_seconds = poll_seconds
        self._timeout_seconds = timeout_seconds
        self._sleep = sleep
        self._clock = clock

    # -- the port ----------------------------------------------------------------------------

    def deploy(self, request: DeployRequest) -> Deployment:
        """Make ``request``'s package the one the endpoint serves; wait until it does.

        Raises:
            DeploymentFailed: SageMaker could not start the package (the message has its
                FailureReason); after a failed update the previous configuration keeps serving.
            DeploymentTimedOut: the endpoint was still changing after ``timeout_seconds``.
            SageMakerError: a call was refused, the endpoint is busy with another change, or
                it is ``Failed`` (SageMaker only lets a failed endpoint be deleted).
            IntegrityError: the package folder is damaged or is not ``request``'s package.
        """
        model_name = self.model_name(request)
        config_name = self.endpoint_config_name(request)
        current = self._describe_endpoint()
        previous = None if current is None else str(current.get("EndpointConfigName", ""))
        if current is not None and config_name in _configs_of(current):
            if current["EndpointStatus"] == "InService":
                return self._serving(config_name, request.package_sha256, "already serving")
            # a deploy of this very configuration is under way (a repeat after a timeout)
            return self._wait(config_name, request.package_sha256, previous)
        if current is not None:
            self._check_updatable(current)

        if package_sha256(request.package_dir) != request.package_sha256:
            raise IntegrityError(
                f"{request.package_dir} is not the package of release {request.release_seq} "
                f"(sha256 {request.package_sha256[:12]}…); fetch it from the store again"
            )
        with tempfile.TemporaryDirectory(prefix="lockgate-model-") as work:
            archive = write_model_archive(request.package_dir, Path(work) / MODEL_ARCHIVE)
            self._store.put_file(_archive_key(request), archive)
        tags = _tags(request)
        self._call(
            "create_model",
            exists_ok=True,
            ModelName=model_name,
            ExecutionRoleArn=self.role_arn,
            PrimaryContainer={
                "Image": self.image_uri,
                "ModelDataUrl": self.model_data_url(request),
            },
            Tags=tags,
        )
        self._call(
            "create_endpoint_config",
            exists_ok=True,
            EndpointConfigName=config_name,
            ProductionVariants=[
                {
                    "VariantName": VARIANT,
                    "ModelName": model_name,
                    "InstanceType": self.instance_type,
                    "InitialInstanceCount": self.instance_count,
                    "InitialVariantWeight": 1.0,
                }
            ],
            DataCaptureConfig=self._data_capture(),
            Tags=tags,
        )
        if current is None:
            self._call(
                "create_endpoint", EndpointName=self.endpoint_name, EndpointConfigName=config_name
            )
        else:
            self._call(
                "update_endpoint",
                EndpointName=self.endpoint_name,
                EndpointConfigName=config_name,
                RetainAllVariantProperties=False,
            )
        return self._wait(config_name, request.package_sha256, previous)

    def status(self) -> Deployment:
        """What the endpoint is doing, with the package it serves when lockgate deployed it."""
        described = self._describe_endpoint()
        if described is None:
            return Deployment(
                state="not_running",
                endpoint=self.endpoint_name,
                detail=f"no SageMaker endpoint named '{self.endpoint_name}'",
            )
        status = str(described["EndpointStatus"])
        config_name = str(described.get("EndpointConfigName", ""))
        reason = _one_line(described.get("FailureReason", ""))
        detail = f"{status} on {config_name}" if config_name else status
        if reason:
            detail += f"; last failure: {reason}"
        return Deployment(
            state=_STATES.get(status, "updating"),
            endpoint=self.endpoint_name,
            detail=detail,
            package_sha256=self._package_of(config_name) if config_name else None,
        )

    # -- names -------------------------------------------------------------------------------

    def model_data_url(self, request: DeployRequest) -> str:
        """Where ``deploy`` uploads the request's ``model.tar.gz``: beside the package."""
        return f"s3://{self._store.bucket}/{self._store.prefix}{_archive_key(request)}"

    def model_name(self, request: DeployRequest) -> str:
        """The SageMaker model ``deploy`` creates for ``request`` with these settings."""
        return self._resource_name(
            request, self.image_uri, self.role_arn, self.model_data_url(request)
        )

    def endpoint_config_name(self, request: DeployRequest) -> str:
        """The endpoint configuration ``deploy`` creates for ``request`` with these settings."""
        return self._resource_name(
            request,
            self.model_name(request),
            self.instance_type,
            str(self.instance_count),
            str(self.sampling_percent),
            self.capture_uri,
        )

    def _resource_name(self, request: DeployRequest, *settings: str) -> str:
        """``<endpoint>-v<version>-<sha8>-<digest of settings>``, within SageMaker's 63 chars."""
        digest = hashlib.sha256("\n".join(settings).encode()).hexdigest()[:6]
        suffix = f"-v{request.version}-{request.package_sha256[:8]}-{digest}"
        base = self.endpoint_name
        if len(base) + len(suffix) > 63:
            # keep the names of two long endpoints apart when their shortened forms meet
            mark = hashlib.sha256(base.encode()).hexdigest()[:4]
            base = base[: 63 - len(suffix) - len(mark) - 1].rstrip("-") + "-" + mark
        return base + suffix

    # -- steps -------------------------------------------------------------------------------

    def _data_capture(self) -> dict[str, Any]:
        return {
            "EnableCapture": self.sampling_percent > 0,
            "InitialSamplingPercentage": self.sampling_percent,
            "DestinationS3Uri": self.capture_uri,
            "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
            "CaptureContentTypeHeader": {
                "CsvContentTypes": ["text/csv"],
                "JsonContentTypes": ["application/json"],
            },
        }

    def _check_updatable(self, current: dict[str, Any]) -> None:
        status = str(current["EndpointStatus"])
        name = self.endpoint_name
        if status == "Failed":
            reason = _one_line(current.get("FailureReason", "")) or "no reason given"
            raise SageMakerError(f"endpoint '{name}' is Failed ({reason}). {self._delete_hint}")
        if status in _IN_PROGRESS or status == "Deleting":
            raise SageMakerError(
                f"endpoint '{name}' is {status} with another configuration; deploy again once "
                "it is InService (see `lockgate status`)"
            )

    def _wait(self, config_name: str, sha256: str, previous: str | None = None) -> Deployment:
        deadline = self._clock() + self._timeout_seconds
        name = self.endpoint_name
        logs = f"CloudWatch log group /aws/sagemaker/Endpoints/{name}"
        while True:
            described = self._describe_endpoint()
            if described is None:
                raise SageMakerError(f"endpoint '{name}' disappeared while deploying (deleted?)")
            status = str(described["EndpointStatus"])
            serving = str(described.get("EndpointConfigName", ""))
            reason = _one_line(described.get("FailureReason", "")) or "no reason given"
            if status == "InService" and serving == config_name:
                return self._serving(config_name, sha256, "now serving")
            if status == "InService":
                raise DeploymentFailed(
                    f"SageMaker could not update endpoint '{name}' to {config_name}: {reason}; "
                    f"the update was rolled back and {serving} keeps serving (see the {logs})"
                )
            if status == "Failed":
                raise DeploymentFailed(
                    f"endpoint '{name}' failed to start {config_name}: {reason}; nothing serves "
                    f"on it (see the {logs}). {self._delete_hint}"
                )
            if status == "UpdateRollbackFailed":
                raise DeploymentFailed(
                    f"updating endpoint '{name}' to {config_name} failed and so did the rollback "
                    f"to {previous}: {reason}; it serves a mix of both, so deploy again or fix it "
                    f"by hand (see the {logs})"
                )
            if status not in _IN_PROGRESS:
                raise SageMakerError(
                    f"endpoint '{name}' went {status} while deploying {config_name}"
                )
            if self._clock() >= deadline:
                raise DeploymentTimedOut(
                    f"endpoint '{name}' is still {status} after {self._timeout_seconds:.0f} s "
                    f"deploying {config_name}; SageMaker carries on: check `lockgate status` and "
                    f"the {logs}, and deploy again to wait for it"
                )
            self._sleep(self._poll_seconds)

    @property
    def _delete_hint(self) -> str:
        return (
            "SageMaker only lets a failed endpoint be deleted: run `aws sagemaker delete-endpoint "
            f"--endpoint-name {self.endpoint_name}`, then deploy again"
        )

    def _serving(self, config_name: str, sha256: str, how: str) -> Deployment:
        return Deployment(
            state="serving",
            endpoint=self.endpoint_name,
            detail=f"{how} {config_name}",
            package_sha256=sha256,
        )

    def _package_of(self, config_name: str) -> str | None:
        """The package sha256 tagged on a configuration lockgate created, else None."""
        described = self._call(
            "describe_endpoint_config", missing_ok=True, EndpointConfigName=config_name
        )
        if described is None:
            return None
        tags = self._call("list_tags", ResourceArn=described["EndpointConfigArn"]) or {}
        for tag in tags.get("Tags", ()):
            if tag.get("Key") == SHA_TAG:
                return str(tag["Value"])
        return None

    # -- calls -------------------------------------------------------------------------------

    def _describe_endpoint(self) -> dict[str, Any] | None:
        return self._call("describe_endpoint", missing_ok=True, EndpointName=self.endpoint_name)

    def _call(
        self,
        operation: str,
        *,
        exists_ok: bool = False,
        missing_ok: bool = False,
        **params: Any,
    ) -> dict[str, Any] | None:
        """``client.<operation>(**params)`` with botocore's errors translated.

        Returns None instead of raising when ``exists_ok`` and the resource already exists,
        or ``missing_ok`` and it does not exist (SageMaker says both in a ValidationException).
        """
        try:
            response: dict[str, Any] = getattr(self._client, operation)(**params)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code = str(error.get("Code", ""))
            message = _one_line(error.get("Message", ""))
            if code == "ValidationException" and (
                (exists_ok and "Cannot create already existing" in message)
                or (missing_ok and "Could not find" in message)
            ):
                return None
            raise self._refused(_operation_name(operation), code, message) from exc
        except BotoCoreError as exc:
            raise _unanswered(_operation_name(operation), exc) from exc
        return response

    def _refused(self, operation: str, code: str, message: str) -> SageMakerError:
        where = f"SageMaker {operation} for endpoint '{self.endpoint_name}'"
        if code in _AUTH_CODES:
            role = f" and iam:PassRole on {self.role_arn}" if operation == "CreateModel" else ""
            return SageMakerError(
                f"{where} was refused ({code}): check the AWS credentials (AWS_PROFILE, "
                f"aws sso login) and that they allow sagemaker:{operation}{role}",
                code,
            )
        hint = _HINTS.get(code)
        if hint is None and "role" in message.lower():
            hint = (
                f"check role_arn {self.role_arn}: it must exist and trust sagemaker.amazonaws.com"
            )
        text = f"{where} failed: {code} {message}".rstrip()
        return SageMakerError(f"{text} ({hint})" if hint else text, code)


def _archive_key(request: DeployRequest) -> str:
    return request.package_prefix.rstrip("/") + "/" + MODEL_ARCHIVE


def _configs_of(described: dict[str, Any]) -> set[str]:
    """The configuration an endpoint runs and the one it is being updated to, if any."""
    pending = described.get("PendingDeploymentSummary") or {}
    return {
        str(described.get("EndpointConfigName", "")),
        str(pending.get("EndpointConfigName", "")),
    }


def _tags(request: DeployRequest) -> list[dict[str, str]]:
    values = {
        MODEL_TAG: request.model,
        VERSION_TAG: str(request.version),
        SHA_TAG: request.package_sha256,
    }
    return [
        {"Key": key, "Value": _NOT_TAG_TEXT.sub("_", value)[:256]} for key, value in values.items()
    ]


def _unanswered(operation: str, exc: BotoCoreError) -> SageMakerError:
    return SageMakerError(
        unanswered(
            exc,
            doing=f"for SageMaker {operation}",
            reach=f"SageMaker for {operation}",
            failed=f"SageMaker {operation}",
        )
    )


def _operation_name(method: str) -> str:
    """``create_model`` -> ``CreateModel``, as AWS names the call."""
    return "".join(part.title() for part in method.split("_"))


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


if TYPE_CHECKING:  # mypy proves the adapter implements the port

    def _implements(endpoint: SageMakerEndpoint) -> Endpoint:
        return endpoint
