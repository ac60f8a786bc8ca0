"""The local endpoint adapter: an environment's ``lockgate serve`` process on this machine.

A running server writes a state file (``.lockgate/<env>/endpoint.json``: pid, URL and a
random token, readable only by its user); this adapter finds the server through it and asks
it to hot-swap a package over HTTP on 127.0.0.1. No state file, a dead pid or a refused
connection all mean "not running", which is not an error: the release serves when
``lockgate serve`` starts.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lockgate.errors import LockgateError
from lockgate.ports.endpoint import Deployment, DeploymentFailed, DeployRequest
from lockgate.processes import alive

if TYPE_CHECKING:
    from lockgate.ports.endpoint import Endpoint

SWAP_TIMEOUT = 300.0
"""Seconds a hot swap may take: loading, verifying and warming up a large package."""
STATUS_TIMEOUT = 5.0


@dataclass(frozen=True)
class ServerState:
    """What a running server wrote about itself."""

    pid: int
    url: str
    token: str
    model_dir: str = ""


def read_state(state_file: Path) -> ServerState | None:
    """The state of the server that wrote ``state_file``, or None if it is not running."""
    try:
        document = json.loads(Path(state_file).read_text(encoding="utf-8"))
        state = ServerState(
            pid=int(document["pid"]),
            url=str(document["url"]).rstrip("/"),
            token=str(document["token"]),
            model_dir=str(document.get("model_dir") or ""),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return state if alive(state.pid) else None


class LocalEndpoint:
    """An environment's local server (implements :class:`~lockgate.ports.endpoint.Endpoint`).

    Args:
        state_file: where that environment's server writes its state.
        name: the endpoint's name, for messages.
    """

    def __init__(self, state_file: Path, name: str = "lockgate") -> None:
        self.state_file = Path(state_file)
        self.name = name

    def deploy(self, request: DeployRequest) -> Deployment:
        """See :meth:`lockgate.ports.endpoint.Endpoint.deploy`."""
        state = read_state(self.state_file)
        if state is None:
            return self._not_running()
        body = json.dumps(
            {
                "model_dir": str(request.package_dir),
                "release": {
                    "seq": request.release_seq,
                    "env": request.env,
                    "model": request.model,
                    "version": request.version,
                    "package_sha256": request.package_sha256,
                },
            }
        ).encode()
        try:
            status, document = _call(
                state, "/lockgate/swap", body, SWAP_TIMEOUT, {"Content-Type": "application/json"}
            )
        except ConnectionError:
            return self._not_running()
        if status == 200:
            return Deployment(
                "serving", state.url, "hot-swapped", package_sha256=request.package_sha256
            )
        error = document.get("error") or f"HTTP {status}"
        if status == 409:
            raise DeploymentFailed(str(error))
        raise LockgateError(f"endpoint {self.name} at {state.url} refused the swap: {error}")

    def status(self) -> Deployment:
        """See :meth:`lockgate.ports.endpoint.Endpoint.status`."""
        state = read_state(self.state_file)
        if state is None:
            return self._not_running()
        try:
            status, document = _call(state, "/version", None, STATUS_TIMEOUT, {})
        except ConnectionError:
            return self._not_running()
        if status != 200:
            return Deployment("failed", state.url, f"/version answered HTTP {status}")
        version = document.get("version")
        return Deployment(
            "serving",
            state.url,
            f"{document.get('model')} version {version}",
            package_sha256=document.get("package_sha256"),
        )

    def _not_running(self) -> Deployment:
        return Deployment("not_running", self.name, "no server is running for this environment")


def _call(
    state: ServerState, path: str, body: bytes | None, timeout: float, headers: dict[str, str]
) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(  # noqa: S310 - the URL is the local server's own
        state.url + path,
        data=body,
        method="POST" if body is not None else "GET",
        headers={**headers, "X-Lockgate-Token": state.token},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return response.status, _json(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, _json(exc.read())
    except (urllib.error.URLError, OSError) as exc:
        reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        if isinstance(reason, TimeoutError):
            raise LockgateError(
                f"the endpoint at {state.url} did not answer {path} within {timeout:g} s; "
                "it may still be loading: look at `lockgate history` and its /version"
            ) from None
        raise ConnectionError(str(exc)) from exc


def _json(raw: bytes) -> dict[str, Any]:
    try:
        document = json.loads(raw)
    except ValueError:
        return {}
    return document if isinstance(document, dict) else {}


def ping(url: str, timeout: float = 2.0) -> bool:
    """Whether the server at ``url`` answers ``GET /ping`` with 200 (it is ready to predict)."""
    try:
        with urllib.request.urlopen(url + "/ping", timeout=timeout) as response:  # noqa: S310
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


if TYPE_CHECKING:  # mypy proves the adapter implements the port

    def _implements(endpoint: LocalEndpoint) -> Endpoint:
        return endpoint
