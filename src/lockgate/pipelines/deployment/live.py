"""A recorded release goes live: the registry alias, then the endpoint, or it is marked failed.

Promotion and rollback record a release in the environment's ledger first; this is what they
do next. The ledger stays the record of what serves: a release its endpoint refuses gets a
``failed`` record and the alias goes back to the release that still serves.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from lockgate.errors import LockgateError
from lockgate.pipelines.deployment.releases import RELEASES, Release, read_history
from lockgate.ports.endpoint import Deployment, DeployRequest
from lockgate.ports.tracking import TrackingError

if TYPE_CHECKING:  # promotion imports this module; the type is all that is needed here
    from lockgate.pipelines.deployment.promotion import Environment

Say = Callable[[str], None]


class PromotionFailed(LockgateError):
    """The release was recorded but its package failed on the endpoint; it is marked failed."""


def go_live(target: Environment, release: Release, local: Path, say: Say) -> Deployment | None:
    """Point ``target``'s registry alias at ``release`` and deploy it to ``target``'s endpoint.

    If the endpoint does not take the package -- for any reason, Ctrl-C included -- the release
    is marked failed, so the ledger never claims a package serves that did not, and the alias
    goes back to what the ledger says serves.

    Args:
        local: ``release``'s verified package copy (what a local endpoint loads).

    Returns:
        The endpoint's deployment; None when ``target`` has no endpoint.

    Raises:
        PromotionFailed: the endpoint refused the package (the release is marked failed).
    """
    _alias(target, release, say)
    if target.endpoint is None:
        return None
    say(f"deploying to endpoint {target.endpoint_name}")
    try:
        return target.endpoint.deploy(_request(target, release, local))
    except BaseException as exc:
        error = str(exc) or type(exc).__name__
        target.ledger.append(
            RELEASES,
            target.name,
            {"action": "failed", "release_seq": release.seq, "error": error},
        )
        # Re-read: another release may have landed while this one was deploying.
        serving = read_history(target.ledger, target.name).current()
        if serving is not None:
            _alias(target, serving, say)
        if not isinstance(exc, LockgateError):
            raise
        kept = (
            f"{serving.model} version {serving.version} (release #{serving.seq}) serves"
            if serving
            else "nothing serves there"
        )
        raise PromotionFailed(
            f"release #{release.seq} of {target.name} failed on the endpoint and is marked "
            f"failed; {kept}: {error}"
        ) from None


def resync(target: Environment, current: Release, local: Path, say: Say) -> Deployment | None:
    """Deploy the current release again if the endpoint runs and serves other bytes (it was
    started, or changed, behind the ledger's back).

    Returns:
        The endpoint's status or new deployment; None when ``target`` has no endpoint.

    Raises:
        PromotionFailed: the endpoint could not be brought back to ``current``.
    """
    if target.endpoint is None:
        return None
    status = target.endpoint.status()
    if status.state != "serving" or status.package_sha256 in (None, current.package_sha256):
        return status
    say(f"endpoint {target.endpoint_name} serves other bytes; deploying release #{current.seq}")
    try:
        return target.endpoint.deploy(_request(target, current, local))
    except LockgateError as exc:
        raise PromotionFailed(
            f"endpoint {target.endpoint_name} does not serve release #{current.seq} of "
            f"{target.name} and could not be brought back to it: {exc}"
        ) from None


def _request(target: Environment, release: Release, local: Path) -> DeployRequest:
    return DeployRequest(
        env=target.name,
        endpoint_name=target.endpoint_name,
        model=release.model,
        version=release.version,
        package_sha256=release.package_sha256,
        package_dir=local,
        package_prefix=release.package_prefix,
        release_seq=release.seq,
    )


def _alias(target: Environment, release: Release, say: Say) -> None:
    version = int(release.record.get("registry_version") or release.version)
    try:
        target.registry.set_alias(release.model, target.name, version)
    except TrackingError as exc:
        # The ledger is the record of what serves; the alias is a convenience for MLflow users.
        say(f"warning: the registry alias '{target.name}' was not moved: {exc}")
