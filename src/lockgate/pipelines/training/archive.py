"""A model package as the ``model.tar.gz`` SageMaker unpacks into ``/opt/ml/model``."""

from __future__ import annotations

import gzip
import tarfile
from pathlib import Path

from lockgate.pipelines.training.package import PACKAGE_JSON, verify_package

ARCHIVE_MTIME = 0
"""Every archive member's mtime: the same package gives the same bytes, whenever it is packed."""


def write_model_archive(package_dir: Path, dest: Path) -> Path:
    """Pack a model package into the ``model.tar.gz`` SageMaker unpacks into ``/opt/ml/model``.

    The package is verified first. The archive holds ``package.json`` and the files it lists,
    at its root, in name order, with fixed times, owners and modes, and gzip without a name or
    time in its header: the same package always gives the same bytes.

    Returns:
        ``dest``.

    Raises:
        IntegrityError: a file is missing or differs from ``package.json``.
    """
    package_dir = Path(package_dir)
    document = verify_package(package_dir)
    names = sorted({*document["files"], PACKAGE_JSON})
    with (
        open(dest, "wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=ARCHIVE_MTIME) as compressed,
        tarfile.open(fileobj=compressed, mode="w", format=tarfile.PAX_FORMAT) as archive,
    ):
        for name in names:
            path = package_dir / name
            member = tarfile.TarInfo(name)
            member.size = path.stat().st_size
            member.mtime = ARCHIVE_MTIME
            member.mode = 0o644
            member.uid = member.gid = 0
            member.uname = member.gname = ""
            with open(path, "rb") as content:
                archive.addfile(member, content)
    return dest
