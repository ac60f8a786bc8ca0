"""Copies of a released package and its baseline, every one verified.

* :func:`local_copy`: a store's package in a local folder, for what loads it here (promotion's
  checks, a local endpoint, monitoring), verified and reused while it still matches the store;
* :func:`publish_package`: a package into another environment's store, checked there byte for
  byte against the copy promoted;
* :func:`publish_baseline`: the package's data version baseline beside it, under
  :func:`baseline_prefix`, so that environment's monitoring reads it from its own store.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from lockgate.errors import LockgateError, ObjectNotFound
from lockgate.pipelines.data.versions import read_manifest, read_verified
from lockgate.pipelines.training.package import (
    package_sha256,
    read_package_from_store,
    verify_package,
    write_package_to_store,
)
from lockgate.ports.store import Store

BASELINE_FILES = ("baseline/statistics.json", "baseline/constraints.json")

Say = Callable[[str], None]


def local_copy(store: Store, prefix: str, work_dir: Path) -> Path:
    """A verified local copy of the package under ``prefix`` (reused when already there)."""
    folder = Path(work_dir) / "packages" / prefix.strip("/").replace("/", "-")
    if folder.exists():
        try:
            verify_package(folder)
            if _same_description(store, prefix, folder):
                return folder
        except LockgateError:
            pass
        shutil.rmtree(folder)
    staging = Path(tempfile.mkdtemp(prefix=".package-", dir=_mkdir(folder.parent)))
    try:
        read_package_from_store(store, prefix, staging)
        try:
            staging.rename(folder)
        except OSError:
            # Another process (a promotion, `serve`) made the same copy first: use theirs.
            verify_package(folder)
            shutil.rmtree(staging, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return folder


def _same_description(store: Store, prefix: str, folder: Path) -> bool:
    return store.get(prefix.rstrip("/") + "/package.json") == (folder / "package.json").read_bytes()


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def publish_package(
    source: Store, target: Store, target_name: str, local: Path, prefix: str, say: Say
) -> bool:
    """Copy the package ``local`` (read from ``source``) to ``prefix`` in ``target`` and verify
    it there.

    Args:
        target_name: the environment ``target`` belongs to, for messages.

    Returns:
        False, copying nothing, when ``source`` and ``target`` are the same store.

    Raises:
        LockgateError: the copy read back from ``target`` differs from ``local``.
    """
    if _same_store(source, target):
        return False
    say(f"copying {prefix} to {target_name} ({target.uri})")
    write_package_to_store(target, local, prefix)
    with tempfile.TemporaryDirectory(prefix="lockgate-verify-") as scratch:
        copy = read_package_from_store(target, prefix, Path(scratch) / "package")
        if package_sha256(copy) != package_sha256(local):
            raise LockgateError(f"{prefix} in {target_name} differs from the package promoted")
    say(f"verified the sha256 of every file of {prefix} in {target_name}")
    return True


def baseline_prefix(dataset: str, data_version: str) -> str:
    """Where a release's baseline lives in an environment's store other than the home one
    (the home store has it under ``processed/``)."""
    return f"monitoring/baselines/{dataset}/{data_version}/"


def publish_baseline(
    source: Store, source_name: str, target: Store, dataset: str, data_version: str, say: Say
) -> None:
    """Copy the data version's baseline (verified against its manifest in ``source``) to
    :func:`baseline_prefix` in ``target``, so the target's monitoring reads it from its own
    store; nothing when they are the same store.

    Args:
        source_name: the environment ``source`` belongs to, for messages.

    A baseline missing from ``source`` is a warning said, not an error: the release is not
    monitored until it is promoted again.
    """
    if _same_store(source, target):
        return
    try:
        manifest = read_manifest(source, dataset, data_version)
        for name in BASELINE_FILES:
            target.put(
                baseline_prefix(dataset, data_version) + name.split("/", 1)[1],
                read_verified(source, manifest, name),
            )
    except ObjectNotFound:
        say(f"warning: no baseline of {dataset} {data_version} in {source_name}; not monitored")


def _same_store(one: Store, other: Store) -> bool:
    return one.uri.rstrip("/") == other.uri.rstrip("/")
