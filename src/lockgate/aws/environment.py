"""An environment on AWS: deploy its stacks, read its state, point its Lambdas at an image.

An environment is two stacks. ``lockgate-<env>-images`` holds the ECR repositories;
``lockgate-<env>`` holds everything that runs an image (bucket, Lambdas, schedule, alarms,
SageMaker role). The split exists because a Lambda function cannot be created before its image
is in ECR: the first deploy creates the repositories and stops there, saying to push the
data-prep image; the next deploy creates the rest, pinned to that image's digest.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from lockgate.aws.image_sync import ImageSync, latest_digest, repository_uri, sync_image
from lockgate.aws.session import function_name, images_stack_name, repository_name, stack_name
from lockgate.aws.stack import StackResult, Stacks, template_body
from lockgate.config_aws import AwsConfig
from lockgate.errors import ConfigError

ENV_NAME = re.compile(r"[a-z][a-z0-9-]{0,11}")
"""What the templates' EnvName allows: it becomes part of bucket and function names."""
DATA_PREP = "data-prep"
OWNED_PARAMETERS = (
    "EnvName",
    "DataPrepImageUri",
    "MonitoringSchedule",
    "EndpointName",
    "DeploymentId",
)
OWNED_PARAMETERS_SOURCE = (
    "the environment's name, the newest image's digest, [monitor] schedule, the endpoint's name "
    "and the deployment's fingerprint"
)
SAGEMAKER = "sagemaker"
SYNCED_FUNCTIONS = ("data-prep", "monitor")
LIVE_ALIAS = "live"

Say = Callable[[str], None]


@dataclass
class DeployOutcome:
    """What ``deploy`` did: the stacks it deployed and what is left for the user to do."""

    images: StackResult
    environment: StackResult | None
    image_uri: str | None
    next_step: str | None = None


def deploy(
    session: Any,
    env: str,
    config: AwsConfig,
    *,
    image_digest: str | None = None,
    monitoring_schedule: str = "rate(14 days)",
    endpoint_name: str | None = None,
    say: Say = lambda _message: None,
    stacks: Stacks | None = None,
) -> DeployOutcome:
    """Deploy ``env``'s images stack, then (once the data-prep image exists) its stack.

    Args:
        image_digest: the data-prep image to run (``sha256:...``); default the newest pushed.
        monitoring_schedule: ``[monitor] schedule``, so AWS runs monitoring when ``up`` would.
        endpoint_name: the endpoint the alarms watch (default ``lockgate-<env>``).

    Raises:
        ConfigError: the environment's name cannot name AWS resources, or ``config.parameters``
            sets a parameter deploy owns.
    """
    if not ENV_NAME.fullmatch(env):
        raise ConfigError(
            f"environment '{env}' cannot be deployed to AWS: its name becomes part of bucket "
            "and function names, so it must be a lower-case letter followed by at most 11 "
            "lower-case letters, digits or dashes"
        )
    owned = sorted(set(config.parameters) & set(OWNED_PARAMETERS))
    if owned:
        raise ConfigError(
            f"[envs.{env}.aws] parameters sets {', '.join(owned)}, which `lockgate aws deploy` "
            f"sets itself ({OWNED_PARAMETERS_SOURCE}); remove it from the table"
        )
    stacks = stacks or Stacks(session.client("cloudformation"))
    tags = {"lockgate:env": env}
    images = stacks.deploy(
        images_stack_name(env), template_body("images"), {"EnvName": env}, tags=tags, say=say
    )
    repository = repository_name(env, DATA_PREP)
    ecr = session.client("ecr")
    uri = images.outputs.get("DataPrepRepositoryUri") or repository_uri(ecr, repository)
    digest = image_digest or latest_digest(ecr, repository)
    if digest is None:
        return DeployOutcome(
            images,
            None,
            None,
            next_step=(
                f"push the data-prep image to {uri} (the data-pipeline-image "
                f"workflow does it; see docs/aws.md), then run `lockgate aws deploy --env {env}` "
                "again to create the environment"
            ),
        )
    image_uri = f"{uri}@{digest}"
    parameters = {
        **config.parameters,
        "EnvName": env,
        "DataPrepImageUri": image_uri,
        "MonitoringSchedule": monitoring_schedule,
        "EndpointName": endpoint_name or f"lockgate-{env}",
    }
    body = template_body("environment")
    parameters["DeploymentId"] = deployment_id(body, parameters)
    result = stacks.deploy(
        stack_name(env, config),
        body,
        parameters,
        tags=tags,
        say=say,
    )
    return DeployOutcome(images, result, image_uri)


def deployment_id(body: str, parameters: Mapping[str, str]) -> str:
    """16 hex characters that change whenever the template or a parameter does.

    Lambda publishes a version only when code or configuration changed, and CloudFormation
    replaces a version only when its own properties change; the id, in the functions'
    environment and their versions' description, makes both follow every real change.
    """
    text = body + json.dumps(dict(sorted(parameters.items())))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def sync(session: Any, env: str, *, digest: str | None = None) -> list[ImageSync]:
    """Point ``env``'s data-prep and monitor functions at the newest data-prep image."""
    return sync_image(
        session.client("lambda"),
        session.client("ecr"),
        repository=repository_name(env, DATA_PREP),
        functions=[function_name(env, name) for name in SYNCED_FUNCTIONS],
        alias=LIVE_ALIAS,
        digest=digest,
    )


@dataclass
class EnvironmentState:
    """What `lockgate aws status` shows; a part AWS would not tell is a line in ``problems``."""

    stacks: dict[str, str] = field(default_factory=dict)
    outputs: dict[str, str] = field(default_factory=dict)
    functions: dict[str, dict[str, Any]] = field(default_factory=dict)
    latest_image: str | None = None
    endpoint: dict[str, Any] | None = None
    schedule: dict[str, Any] | None = None
    alarms: dict[str, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def status(
    session: Any, env: str, config: AwsConfig, endpoint_name: str, *, stacks: Stacks | None = None
) -> EnvironmentState:
    """The state of ``env`` on AWS, read part by part (a refused part does not hide the rest)."""
    stacks = stacks or Stacks(session.client("cloudformation"))
    state = EnvironmentState()
    for name in (images_stack_name(env), stack_name(env, config)):
        described = _read(state, f"stack {name}", functools.partial(stacks.describe, name))
        state.stacks[name] = str(described["StackStatus"]) if described else "not deployed"
        if described:
            state.outputs.update(
                {o["OutputKey"]: o["OutputValue"] for o in described.get("Outputs", [])}
            )
    ecr = session.client("ecr")
    state.latest_image = _read(
        state, "ECR", lambda: latest_digest(ecr, repository_name(env, DATA_PREP))
    )
    functions = session.client("lambda")
    for short in SYNCED_FUNCTIONS:
        name = function_name(env, short)
        state.functions[name] = _read(
            state, f"Lambda {name}", functools.partial(_function, functions, name)
        )
    state.endpoint = _read(
        state, "SageMaker", lambda: _endpoint(session.client("sagemaker"), endpoint_name)
    )
    state.schedule = _read(state, "Scheduler", lambda: _schedule(session.client("scheduler"), env))
    state.alarms = (
        _read(state, "CloudWatch", lambda: _alarms(session.client("cloudwatch"), env)) or {}
    )
    return state


def _read(state: EnvironmentState, what: str, call: Callable[[], Any]) -> Any:
    try:
        return call()
    except (ClientError, BotoCoreError) as exc:
        state.problems.append(f"{what}: {' '.join(str(exc).split())}")
    except Exception as exc:  # a lockgate error of a part: reported with the others
        state.problems.append(f"{what}: {exc}")
    return None


def _missing(exc: ClientError) -> bool:
    code = str(exc.response.get("Error", {}).get("Code", ""))
    return code in ("ResourceNotFoundException", "ValidationException", "NotFound")


def _function(client: Any, name: str) -> dict[str, Any]:
    try:
        function = client.get_function(FunctionName=name)
    except ClientError as exc:
        if _missing(exc):
            return {"state": "not deployed"}
        raise
    configuration = function.get("Configuration", {})
    image = str(function.get("Code", {}).get("ResolvedImageUri", ""))
    found: dict[str, Any] = {
        "state": configuration.get("State", "?"),
        "last_update": configuration.get("LastUpdateStatus", "?"),
        "digest": image.rpartition("@")[2] or None,
    }
    try:
        alias = client.get_alias(FunctionName=name, Name=LIVE_ALIAS)
        found["live_version"] = alias.get("FunctionVersion")
    except ClientError as exc:
        if not _missing(exc):
            raise
        found["live_version"] = None
    return found


def _endpoint(client: Any, name: str) -> dict[str, Any]:
    try:
        endpoint = client.describe_endpoint(EndpointName=name)
    except ClientError as exc:
        if _missing(exc):
            return {"name": name, "status": "not deployed"}
        raise
    return {
        "name": name,
        "status": endpoint.get("EndpointStatus"),
        "config": endpoint.get("EndpointConfigName"),
    }


def _schedule(client: Any, env: str) -> dict[str, Any] | None:
    name = f"lockgate-{env}-monitoring"
    try:
        schedule = client.get_schedule(Name=name)
    except ClientError as exc:
        if _missing(exc):
            return None
        raise
    return {
        "name": name,
        "expression": schedule.get("ScheduleExpression"),
        "state": schedule.get("State"),
    }


def _alarms(client: Any, env: str) -> dict[str, str]:
    answer = client.describe_alarms(AlarmNamePrefix=f"lockgate-{env}-")
    return {alarm["AlarmName"]: alarm["StateValue"] for alarm in answer.get("MetricAlarms", [])}


def store_snippet(env: str, outputs: Mapping[str, str]) -> str:
    """The lockgate.toml lines that make ``env`` use what the stack created."""
    lines = [f"[envs.{env}]"]
    if "StoreUri" in outputs:
        lines.append(f'store = "{outputs["StoreUri"]}"')
    lines += ["", f"[envs.{env}.training]", 'compute = "sagemaker"']
    return "\n".join(lines)
