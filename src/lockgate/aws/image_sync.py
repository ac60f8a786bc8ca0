"""Keep image-based Lambda functions on the newest image pushed to their ECR repository.

Lambda resolves an image tag to a digest when a function's code is updated and never follows
the tag again. The deploy workflow updates the functions by digest; the image-sync Lambda, on
every ECR push event, is the second answer (``lockgate aws sync-image`` the third). For each
function it reads the digest its alias runs (``Code.ResolvedImageUri``) and changes nothing if
that is the pushed one (events arrive at least once) or was pushed later (``imagePushedAt``:
two push events delivered out of order). Otherwise it updates the code by digest, publishing a
version, waits for the update and moves the alias there; ``ResourceConflictException`` (an
update in progress) is retried with exponential backoff. Each function's outcome is logged as
one structured record: on AWS, one JSON line on stdout.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from lockgate import logs
from lockgate.aws.errors import unanswered
from lockgate.errors import ConfigError, LockgateError

log = logging.getLogger("lockgate.aws.image_sync")

DIGEST = re.compile(r"sha256:[a-f0-9]{64}")
BACKOFF = 1.0
"""Seconds before the first retry after ResourceConflictException; doubled for each further."""
WAIT_DELAY = 5.0
"""Seconds between two looks at a version whose update is still in progress."""
WAIT_ATTEMPTS = 60
"""Looks at an updating version before giving up (5 minutes with WAIT_DELAY)."""

_CONFLICT = "ResourceConflictException"
_NOT_FOUND = frozenset({"ResourceNotFoundException", "RepositoryNotFoundException"})
_DENIED = frozenset({"AccessDeniedException", "AccessDenied"})
_BAD_CREDENTIALS = frozenset({"UnrecognizedClientException", "ExpiredTokenException"})
_SERVICES = {  # service -> (its name, what is called there, the setting that names it)
    "ecr": ("ECR", "repository", "LOCKGATE_SYNC_REPOSITORY"),
    "lambda": ("Lambda", "function", "LOCKGATE_SYNC_FUNCTIONS"),
}

Sleep = Callable[[float], None]


class ImageSyncError(LockgateError):
    """A function could not be brought to the pushed image; the message says what to do.

    ``code``: AWS's error code, if AWS refused; ``results``: the functions synced before.
    """

    def __init__(self, message: str, code: str = "", results: Sequence[ImageSync] = ()) -> None:
        super().__init__(message)
        self.code = code
        self.results = list(results)


@dataclass(frozen=True)
class ImageSync:
    """What syncing one function did."""

    function: str
    previous_digest: str | None
    """The digest the function ran before (None: unknown)."""
    digest: str
    """The pushed digest it was compared with."""
    changed: bool
    version: str | None
    """The version the alias points at afterwards (None: no alias)."""
    reason: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def latest_digest(ecr_client: Any, repository: str) -> str | None:
    """The digest of the newest tagged image in ``repository`` (by ``imagePushedAt``).

    Untagged images are left out: the repository's lifecycle policy expires them.

    Raises:
        ImageSyncError: the repository does not exist or cannot be read.
    """
    newest: dict[str, Any] | None = None
    page: dict[str, Any] = {}
    while page.get("nextToken") or not page:
        page = _images(ecr_client, repository, **({"nextToken": page["nextToken"]} if page else {}))
        for image in page.get("imageDetails", ()):
            if image.get("imageTags") and (
                newest is None or image["imagePushedAt"] > newest["imagePushedAt"]
            ):
                newest = image
    return None if newest is None else str(newest["imageDigest"])


def sync_image(
    lambda_client: Any,
    ecr_client: Any,
    *,
    repository: str,
    functions: Sequence[str],
    alias: str = "live",
    digest: str | None = None,
    tag: str | None = None,
    retries: int = 5,
    sleep: Sleep = time.sleep,
) -> list[ImageSync]:
    """Bring each of ``functions`` to ``repository``'s image ``digest``, unless it runs it.

    Args:
        digest: ``sha256:<hex>``; None: the image ``tag`` names, or without a tag the newest
            tagged image (see :func:`latest_digest`).
        retries: how often an update refused with ResourceConflictException is sent again.
        sleep: waits between retries and between looks at an updating version.

    Every function is tried; the failures are raised together afterwards.

    Raises:
        ImageSyncError: the image is not in the repository, or a function could not be synced
            (its ``results`` hold the functions that were).
    """
    digest, pushed_at, image_uri = _resolve(ecr_client, repository, digest, tag)

    def pushed_before(running: str) -> bool:
        """Whether the pushed image is older than ``running`` (a late event)."""
        other = _image(ecr_client, repository, {"imageDigest": running})
        return other is not None and pushed_at < other["imagePushedAt"]

    results: list[ImageSync] = []
    failures: list[str] = []
    for name in functions:
        function = _Function(lambda_client, name, alias, retries, sleep)
        try:
            result = _sync(function, digest, image_uri, pushed_before)
        except ImageSyncError as exc:
            failures.append(f"{name}: {exc}")
            fields = {"function": name, "digest": digest, "error": str(exc)}
            logs.event(log, logging.ERROR, "image_sync.failed", failures[-1], **fields)
            continue
        results.append(result)
        outcome = "updated" if result.changed else "unchanged"
        logs.event(log, logging.INFO, f"image_sync.{outcome}", result.reason, **result.to_json())
    if failures:
        raise ImageSyncError("; ".join(failures), results=results)
    return results


def _sync(
    function: _Function, digest: str, image_uri: str, pushed_before: Callable[[str], bool]
) -> ImageSync:
    running, alias_version = function.running()
    name, short = function.name, digest[:19]  # sha256: and 12 hex digits, as docker shows them

    def outcome(changed: bool, version: str | None, reason: str) -> ImageSync:
        return ImageSync(name, running, digest, changed, version, reason)

    if running == digest and alias_version is not None:
        return outcome(False, alias_version, f"{name} already runs {short} ({alias_version})")
    if running is not None and running != digest and pushed_before(running):
        reason = f"{short} was pushed before {running[:19]}, which {name} runs: push events "
        return outcome(False, alias_version, reason + "delivered out of order; not rolled back")
    version = function.deploy(image_uri, alias_exists=alias_version is not None)
    return outcome(True, version, f"{name} updated to {short}: version {version}, alias moved")


def _resolve(
    ecr_client: Any, repository: str, digest: str | None, tag: str | None
) -> tuple[str, datetime, str]:
    """The digest to sync to, when it was pushed, and the image URI by that digest."""
    if digest is None and tag is None:
        digest = latest_digest(ecr_client, repository)
        if digest is None:
            raise ImageSyncError(f"ECR repository {repository} has no tagged image; push one")
    if digest is not None and not DIGEST.fullmatch(digest):
        raise ImageSyncError(f"'{digest}' is not an image digest; give sha256:<64 hex digits>")
    image = _image(ecr_client, repository, {"imageDigest": digest} if digest else {"imageTag": tag})
    if image is None:
        what = f"image {digest}" if digest else f"tag '{tag}'"
        raise ImageSyncError(
            f"ECR repository {repository} has no {what}; check the push succeeded (aws ecr "
            "describe-images) and that the lifecycle policy did not expire it"
        )
    uri = f"{repository_uri(ecr_client, repository)}@{image['imageDigest']}"
    return str(image["imageDigest"]), image["imagePushedAt"], uri


def repository_uri(ecr_client: Any, repository: str) -> str:
    """The repository's URI (``<account>.dkr.ecr.<region>.amazonaws.com/<name>``).

    Raises:
        ImageSyncError: the repository does not exist or cannot be read.
    """
    names = {"repositoryNames": [repository]}
    found = _call(ecr_client, "ecr", "describe_repositories", repository, **names)
    return str(found["repositories"][0]["repositoryUri"])


def _image(ecr_client: Any, repository: str, image_id: Mapping[str, Any]) -> dict[str, Any] | None:
    """The image's details; None if it is not in the repository (any more)."""
    try:
        details = _images(ecr_client, repository, imageIds=[dict(image_id)])["imageDetails"]
    except ImageSyncError as exc:
        if exc.code == "ImageNotFoundException":
            return None
        raise
    return dict(details[0]) if details else None


def _images(ecr: Any, repository: str, **params: Any) -> dict[str, Any]:
    return _call(ecr, "ecr", "describe_images", repository, repositoryName=repository, **params)


class _Function:
    """The Lambda calls the sync needs for one function, their errors as ImageSyncError."""

    def __init__(self, client: Any, name: str, alias: str, retries: int, sleep: Sleep) -> None:
        self._client = client
        self.name = name
        self.alias = alias
        self._retries = retries
        self._sleep = sleep

    def running(self) -> tuple[str | None, str | None]:
        """The digest the alias runs (``$LATEST``'s without an alias), and the alias's version."""
        try:
            aliased = {"FunctionName": self.name, "Qualifier": self.alias}
            response = self._call("get_function", aliased)
            alias_version: str | None = str(response["Configuration"]["Version"])
        except ImageSyncError as exc:
            if exc.code not in _NOT_FOUND:
                raise
            response = self._call("get_function", {"FunctionName": self.name})
            alias_version = None
        if response["Configuration"].get("PackageType") not in (None, "Image"):
            raise ImageSyncError(
                f"Lambda function {self.name} is not a container image function; "
                "remove it from LOCKGATE_SYNC_FUNCTIONS"
            )
        code = response.get("Code", {})
        resolved = str(code.get("ResolvedImageUri") or code.get("ImageUri") or "")
        digest = resolved.rpartition("@")[2]  # moto writes <repo>@sha256@sha256:<hex>
        return (digest if DIGEST.fullmatch(digest) else None), alias_version

    def deploy(self, image_uri: str, *, alias_exists: bool) -> str:
        """Update the code to ``image_uri`` with a new version, wait, move the alias there."""
        code = {"FunctionName": self.name, "ImageUri": image_uri, "Publish": True}
        version = str(self._call("update_function_code", code)["Version"])
        self._wait(version, image_uri)
        alias = {"FunctionName": self.name, "Name": self.alias, "FunctionVersion": version}
        if not alias_exists:
            try:
                self._call("create_alias", alias, retry_conflict=False)
                return version
            except ImageSyncError as exc:
                if exc.code != _CONFLICT:  # created meanwhile: move it like any alias
                    raise
        self._call("update_alias", alias)
        return version

    def _wait(self, version: str, image_uri: str) -> None:
        """Until ``version``'s update has finished (bounded by WAIT_ATTEMPTS)."""
        for _attempt in range(WAIT_ATTEMPTS):
            looked = {"FunctionName": self.name, "Qualifier": version}
            config = self._call("get_function_configuration", looked)
            status, state = config.get("LastUpdateStatus"), config.get("State")
            if status == "Failed" or state == "Failed":
                reason = config.get("LastUpdateStatusReason") or config.get("StateReason") or ""
                code = config.get("LastUpdateStatusReasonCode") or config.get("StateReasonCode")
                raise ImageSyncError(
                    f"Lambda could not update {self.name} to {image_uri}: {reason} ({code}); "
                    "fix the image or the function's permissions and push again"
                )
            if status != "InProgress" and state != "Pending":
                return
            self._sleep(WAIT_DELAY)
        raise ImageSyncError(
            f"{self.name} version {version} was still updating after "
            f"{WAIT_ATTEMPTS * WAIT_DELAY:.0f}s; check it (aws lambda get-function "
            f"--function-name {self.name} --qualifier {version}), then sync again"
        )

    def _call(self, operation: str, params: Mapping[str, Any], retry_conflict: bool = True) -> Any:
        for attempt in range(self._retries + 1):
            try:
                return _call(self._client, "lambda", operation, self.name, **params)
            except ImageSyncError as exc:
                if exc.code != _CONFLICT or not retry_conflict:
                    raise
                if attempt == self._retries:
                    raise ImageSyncError(
                        f"Lambda function {self.name} stayed busy with another update "
                        f"({attempt + 1} attempts of {_action(operation)}); wait for it (aws "
                        f"lambda wait function-updated-v2 --function-name {self.name}) and "
                        "sync again",
                        _CONFLICT,
                    ) from exc
                self._sleep(BACKOFF * 2**attempt)
        raise AssertionError("unreachable")  # pragma: no cover


def _call(client: Any, service: str, operation: str, name: str, **params: Any) -> dict[str, Any]:
    """``client.<operation>(**params)``, botocore's errors as ImageSyncError (with the code)."""
    action = _action(operation)
    service_name, thing, setting = _SERVICES[service]
    try:
        response: dict[str, Any] = getattr(client, operation)(**params)
    except ClientError as exc:
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        if code in _NOT_FOUND:
            hint = f"check {setting} or --env: the {thing} does not exist"
        elif code in _DENIED:
            hint = f"allow {service}:{action} on the {thing}"
        elif code in _BAD_CREDENTIALS:
            hint = "refresh the AWS credentials (aws sso login) or check AWS_PROFILE"
        else:
            hint = " ".join(str(error.get("Message", "")).split()) or "see the AWS error code"
        message = f"{service_name} refused {action} of {thing} {name} ({code}): {hint}"
        raise ImageSyncError(message, code) from exc
    except BotoCoreError as exc:
        failed = f"{action} of {thing} {name}"
        raise ImageSyncError(
            unanswered(exc, doing=f"for {action}", reach=service_name, failed=failed)
        ) from exc
    return response


def _action(operation: str) -> str:
    """``update_function_code`` -> ``UpdateFunctionCode`` (the IAM action's name)."""
    return "".join(part.capitalize() for part in operation.split("_"))


# -- the image-sync Lambda -------------------------------------------------------------------

_clients: dict[str, Any] = {}
_started = False


def pushed_image(event: Mapping[str, Any], repository: str) -> tuple[dict[str, Any] | None, str]:
    """The ``detail`` of ``event`` if it is a push to ``repository``, else None and why not."""
    if event.get("source") != "aws.ecr" or event.get("detail-type") != "ECR Image Action":
        return None, f"not an ECR Image Action ({event.get('source')} {event.get('detail-type')})"
    detail = event.get("detail") or {}
    action, result = detail.get("action-type"), detail.get("result")
    if action != "PUSH" or result != "SUCCESS":
        return None, f"an ECR {action} with result {result}, not a successful push"
    if detail.get("repository-name") != repository:
        return None, f"a push to {detail.get('repository-name')}, not to {repository}"
    if not DIGEST.fullmatch(str(detail.get("image-digest"))):
        return None, f"the push has no image digest ({detail.get('image-digest')})"
    return dict(detail), ""


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Sync ``LOCKGATE_SYNC_FUNCTIONS`` to the image an ECR push event reports.

    Reads ``LOCKGATE_SYNC_REPOSITORY`` (only its pushes count), ``LOCKGATE_SYNC_FUNCTIONS``
    (comma-separated) and ``LOCKGATE_SYNC_ALIAS`` (default ``live``). Any other event is
    ignored with the reason logged. A failure fails the invocation, so Lambda retries it.
    """
    global _started
    if not _started:  # once per execution environment: records as JSON lines on stdout
        env = os.environ.get("LOCKGATE_ENV")
        logs.configure(json_stream=sys.stdout, terminal_level=None, pipeline="deployment", env=env)
        _started = True
    repository = os.environ.get("LOCKGATE_SYNC_REPOSITORY", "").strip()
    listed = os.environ.get("LOCKGATE_SYNC_FUNCTIONS", "").split(",")
    functions = [name.strip() for name in listed if name.strip()]
    if not repository or not functions:
        raise ConfigError(
            "LOCKGATE_SYNC_REPOSITORY and LOCKGATE_SYNC_FUNCTIONS must be set on the image-sync "
            "function; deploy the environment's stack again (lockgate aws deploy)"
        )
    request_id = getattr(context, "aws_request_id", None)
    push, why = pushed_image(event, repository)
    if push is None:
        logs.event(log, logging.INFO, "image_sync.ignored", f"ignored: {why}", reason=why)
        return {"ignored": why, "request_id": request_id}
    results = sync_image(
        _client("lambda"),
        _client("ecr"),
        repository=repository,
        functions=functions,
        alias=os.environ.get("LOCKGATE_SYNC_ALIAS", "").strip() or "live",
        digest=push["image-digest"],
        tag=push.get("image-tag"),
    )
    synced = [result.to_json() for result in results]
    image = {"repository": repository, "digest": push["image-digest"], "tag": push.get("image-tag")}
    return {**image, "functions": synced, "request_id": request_id}


def _client(service: str) -> Any:
    """A client reused while the execution environment is warm."""
    if service not in _clients:
        session = boto3.session.Session()
        region = session.region_name or os.environ.get("AWS_REGION")
        _clients[service] = session.client(service, region_name=region)
    return _clients[service]
