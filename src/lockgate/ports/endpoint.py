"""The endpoint port: where an environment's current release serves predictions.

Adapters: the local uvicorn server (:mod:`lockgate.local.endpoint`) and a SageMaker real-time
endpoint (:mod:`lockgate.aws.sagemaker_endpoint`). The deployment pipeline decides *what*
serves (the release ledger); an endpoint only makes it so.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

from lockgate.errors import LockgateError

EndpointState = Literal["serving", "not_running", "creating", "updating", "failed"]


class DeploymentFailed(LockgateError):
    """The new package could not be loaded or did not answer its warm-up prediction.

    Whatever served before keeps serving; the message says why the new one failed.
    """


@dataclass(frozen=True)
class DeployRequest:
    """One release to put behind an environment's endpoint."""

    env: str
    endpoint_name: str
    model: str
    version: int
    package_sha256: str
    package_dir: Path
    """A verified local copy of the package (what a local server loads)."""
    package_prefix: str
    """Where the package is in the environment's store, e.g. ``models/churn/3/``."""
    release_seq: int
    """The release record's number in ``ledger/releases/<env>/``."""


@dataclass(frozen=True)
class Deployment:
    """What an endpoint is doing."""

    state: EndpointState
    endpoint: str
    """The URL (local) or endpoint name (SageMaker)."""
    detail: str = ""
    package_sha256: str | None = None
    """The package it serves, when known."""


class Endpoint(Protocol):
    """An environment's endpoint.

    Contract, for every adapter:

    * ``deploy`` is a hot swap: the new package is loaded and warmed up beside the old one and
      takes over only once it answered; on failure it raises :class:`DeploymentFailed` and the
      old package keeps serving. Deploying the package already served does nothing.
    * An endpoint that is not running is not an error: ``deploy`` returns state
      ``not_running`` and the release serves when the endpoint starts.
    * Backend failures (unreachable API, refused call) raise a ``LockgateError`` subclass
      with a one-line message.
    """

    def deploy(self, request: DeployRequest) -> Deployment:
        """Make ``request``'s package the one served; wait until it serves or fails."""
        ...

    def status(self) -> Deployment:
        """What the endpoint is doing now."""
        ...
