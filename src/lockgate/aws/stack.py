"""Create or update a CloudFormation stack through a change set, and wait for it.

A change set shows what a deploy will do before it does it, and a template with no changes
is not an error: ``deploy`` then says so and changes nothing. A failed deploy is reported with
the first resource that failed and CloudFormation's reason, not a waiter's generic message.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError, WaiterError

from lockgate.aws.errors import unanswered
from lockgate.errors import LockgateError

TEMPLATES = ("images", "environment", "github-oidc")
_NO_CHANGES = ("didn't contain changes", "No updates are to be performed")
_FAILED = ("CREATE_FAILED", "UPDATE_FAILED", "DELETE_FAILED")


class StackError(LockgateError):
    """A stack could not be deployed or read; the message names the resource and reason."""


@dataclass
class StackResult:
    """What a deploy did."""

    name: str
    status: str
    changed: bool
    changes: list[str] = field(default_factory=list)
    """One line per resource change: ``Add AWS::S3::Bucket Bucket``."""
    outputs: dict[str, str] = field(default_factory=dict)


def template_body(name: str) -> str:
    """The text of one of lockgate's templates (``images``, ``environment``, ``github-oidc``)."""
    if name not in TEMPLATES:
        raise StackError(f"no template '{name}'; lockgate has: {', '.join(TEMPLATES)}")
    return (resources.files("lockgate.aws") / "templates" / f"{name}.yaml").read_text("utf-8")


class Stacks:
    """CloudFormation calls with errors as :class:`StackError`."""

    def __init__(
        self,
        client: Any,
        *,
        poll_seconds: float = 5.0,
        timeout_seconds: float = 3600.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self.poll_seconds = poll_seconds
        self.timeout_seconds = timeout_seconds
        self._sleep = sleep
        self._clock = clock

    def describe(self, name: str) -> dict[str, Any] | None:
        """The stack's description, or None when there is no such stack."""
        try:
            stacks = self._client.describe_stacks(StackName=name)["Stacks"]
        except ClientError as exc:
            if "does not exist" in str(exc):
                return None
            raise _refused("DescribeStacks", name, exc) from exc
        except BotoCoreError as exc:
            raise _unanswered(name, exc) from exc
        return dict(stacks[0]) if stacks else None

    def outputs(self, name: str) -> dict[str, str]:
        """The stack's outputs by key (empty when the stack does not exist)."""
        stack = self.describe(name)
        if stack is None:
            return {}
        return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}

    def deploy(
        self,
        name: str,
        body: str,
        parameters: Mapping[str, str],
        *,
        tags: Mapping[str, str] | None = None,
        say: Callable[[str], None] = lambda _message: None,
    ) -> StackResult:
        """Create ``name`` from ``body``, or update it, and wait until it is done.

        Raises:
            StackError: CloudFormation refused the template or a resource failed; a stack
                whose first create failed is left in ROLLBACK_COMPLETE and must be deleted
                (the message says so).
        """
        existing = self.describe(name)
        status = str(existing["StackStatus"]) if existing else ""
        if status == "ROLLBACK_COMPLETE":
            raise StackError(
                f"stack {name} is in ROLLBACK_COMPLETE (its first create failed): delete it "
                f"(aws cloudformation delete-stack --stack-name {name}) and deploy again"
            )
        # REVIEW_IN_PROGRESS: a first change set was made and never run (refused, or the deploy
        # was stopped); the stack has no resources and takes another CREATE change set.
        reviewing = status == "REVIEW_IN_PROGRESS"
        if status.endswith("_IN_PROGRESS") and not reviewing:
            raise StackError(f"stack {name} is busy ({status}); deploy again when it is done")
        kind = "UPDATE" if existing and not reviewing else "CREATE"
        change_set = f"lockgate-{int(time.time())}"
        try:
            self._client.create_change_set(
                StackName=name,
                ChangeSetName=change_set,
                ChangeSetType=kind,
                TemplateBody=body,
                Parameters=[
                    {"ParameterKey": key, "ParameterValue": value}
                    for key, value in parameters.items()
                ],
                Capabilities=["CAPABILITY_NAMED_IAM"],
                Tags=[{"Key": k, "Value": v} for k, v in (tags or {}).items()],
            )
        except ClientError as exc:
            raise _refused("CreateChangeSet", name, exc) from exc
        except BotoCoreError as exc:
            raise _unanswered(name, exc) from exc
        described = self._wait_change_set(name, change_set)
        if described["Status"] == "FAILED":
            reason = str(described.get("StatusReason", ""))
            self._delete_change_set(name, change_set)
            if any(text in reason for text in _NO_CHANGES):
                say(f"{name}: no changes")
                return StackResult(name, status, False, [], self.outputs(name))
            raise StackError(f"CloudFormation refused the change set of {name}: {reason}")
        changes = [_change_line(change) for change in described.get("Changes", [])]
        for line in changes:
            say(f"{name}: {line}")
        try:
            self._client.execute_change_set(StackName=name, ChangeSetName=change_set)
        except ClientError as exc:
            raise _refused("ExecuteChangeSet", name, exc) from exc
        final = self._wait_stack(name)
        if not final.endswith("_COMPLETE") or "ROLLBACK" in final:
            raise StackError(f"stack {name} ended {final}: {self._first_failure(name)}")
        say(f"{name}: {final}")
        return StackResult(name, final, True, changes, self.outputs(name))

    def _wait_change_set(self, name: str, change_set: str) -> dict[str, Any]:
        deadline = self._clock() + self.timeout_seconds
        while True:
            try:
                described: dict[str, Any] = self._client.describe_change_set(
                    StackName=name, ChangeSetName=change_set
                )
            except ClientError as exc:
                raise _refused("DescribeChangeSet", name, exc) from exc
            if described["Status"] in ("CREATE_COMPLETE", "FAILED"):
                return described
            if self._clock() > deadline:
                raise StackError(f"the change set of {name} was not ready in time")
            self._sleep(self.poll_seconds)

    def _wait_stack(self, name: str) -> str:
        deadline = self._clock() + self.timeout_seconds
        while True:
            stack = self.describe(name)
            status = str(stack["StackStatus"]) if stack else "DELETE_COMPLETE"
            if not status.endswith("_IN_PROGRESS"):
                return status
            if self._clock() > deadline:
                raise StackError(
                    f"stack {name} is still {status} after {self.timeout_seconds:.0f} s; "
                    "CloudFormation carries on: see `lockgate aws status`"
                )
            self._sleep(self.poll_seconds)

    def _first_failure(self, name: str) -> str:
        try:
            events = self._client.describe_stack_events(StackName=name)["StackEvents"]
        except (ClientError, BotoCoreError, WaiterError):
            return "see the stack's events in the CloudFormation console"
        failed = []
        for event in events:  # newest first, back to where this deploy started
            if event.get("ResourceStatus") in _FAILED:
                failed.append(event)
            started = event.get("LogicalResourceId") == name and event.get("ResourceStatus") in (
                "CREATE_IN_PROGRESS",
                "UPDATE_IN_PROGRESS",
            )
            if started and event.get("ResourceStatusReason") == "User Initiated":
                break
        if not failed:
            return "see the stack's events in the CloudFormation console"
        first = failed[-1]
        return (
            f"{first.get('LogicalResourceId')} ({first.get('ResourceType')}): "
            f"{first.get('ResourceStatusReason', 'no reason given')}"
        )

    def _delete_change_set(self, name: str, change_set: str) -> None:
        try:
            self._client.delete_change_set(StackName=name, ChangeSetName=change_set)
        except (ClientError, BotoCoreError):
            pass  # an unused change set costs nothing; the next deploy makes a new one


def _change_line(change: Mapping[str, Any]) -> str:
    detail = change.get("ResourceChange", {})
    line = (
        f"{detail.get('Action', '?')} {detail.get('ResourceType', '?')} "
        f"{detail.get('LogicalResourceId', '?')}"
    )
    if detail.get("Replacement") == "True":
        line += " (replaced)"
    return line


def _refused(operation: str, name: str, exc: ClientError) -> StackError:
    error = exc.response.get("Error", {})
    code = str(error.get("Code", ""))
    message = " ".join(str(error.get("Message", "")).split())
    return StackError(f"CloudFormation {operation} of {name} failed: {code} {message}".rstrip())


def _unanswered(name: str, exc: BotoCoreError) -> StackError:
    return StackError(
        unanswered(
            exc, doing=f"to deploy {name}", reach="CloudFormation", failed=f"deploying {name}"
        )
    )
