"""The Dockerfiles: what each image runs, pinned bases, lean installs, a tight build context.

hadolint (``make infra-lint``) lints them; no image is built here (no Docker engine).
"""

from __future__ import annotations

import importlib
import json
import re
from fnmatch import fnmatch
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCKER = ROOT / "docker"


def instructions(name: str) -> list[tuple[str, str]]:
    """``(INSTRUCTION, arguments)`` of a Dockerfile, continuation lines joined."""
    text = re.sub(r"\\\n", " ", (DOCKER / f"{name}.Dockerfile").read_text())
    lines = [line.strip() for line in text.splitlines()]
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1])
        for line in lines
        if line and not line.startswith("#")
    ]


def only(name: str, instruction: str) -> str:
    [found] = [args for kind, args in instructions(name) if kind == instruction]
    return found


def test_the_data_prep_image_runs_the_data_handler_with_the_baked_config() -> None:
    assert json.loads(only("data-prep", "CMD")) == ["lockgate.aws.lambda_data.handler"]
    assert only("data-prep", "ARG") == "LOCKGATE_CONFIG_FILE=lockgate.toml"
    copies = [args for kind, args in instructions("data-prep") if kind == "COPY"]
    assert "${LOCKGATE_CONFIG_FILE} /var/task/lockgate.toml" in copies
    assert "LOCKGATE_CONFIG=/var/task/lockgate.toml" in only("data-prep", "ENV")


def test_the_sagemaker_image_enters_through_the_container_module() -> None:
    assert json.loads(only("sagemaker", "ENTRYPOINT")) == ["python", "-m", "lockgate.aws.container"]
    assert "8080" in only("sagemaker", "EXPOSE")


@pytest.mark.parametrize("name", ["data-prep", "sagemaker"])
def test_base_images_are_pinned_and_installs_are_lean(name: str) -> None:
    base = only(name, "FROM")
    assert re.fullmatch(r"[\w./-]+:\d[\w.-]*(@sha256:[0-9a-f]{64})?", base), base
    assert ":latest" not in base
    [install] = [args for kind, args in instructions(name) if kind == "RUN"]
    assert "pip install --no-cache-dir" in install
    for kind, args in instructions(name):
        if kind == "COPY" and "LOCKGATE_CONFIG_FILE" not in args:
            *sources, _ = args.split()
            assert all((ROOT / source).exists() for source in sources), args
            assert set(sources) <= {"pyproject.toml", "README.md", "src"}


def test_dockerignore_keeps_history_environments_stores_and_tests_out() -> None:
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert {".git", ".venv", ".lockgate", "tests"} <= set(patterns)
    for needed in (
        "pyproject.toml",
        "README.md",
        "src",
        "src/lockgate/aws/container.py",
        "examples/lockgate.toml",
    ):
        assert not any(fnmatch(needed, pattern) for pattern in patterns), needed


def test_every_handler_the_image_is_started_with_exists() -> None:
    """The CMD and each function's ImageConfig Command in the environment template name a
    function lockgate has (a renamed handler fails here, not on the first upload)."""
    template = (ROOT / "src/lockgate/aws/templates/environment.yaml").read_text()
    commands = re.findall(r'Command:\s*\[\s*"?([\w.]+)"?\s*\]', template)
    handlers = {*json.loads(only("data-prep", "CMD")), *commands}
    assert len(handlers) == 3, handlers
    for dotted in handlers:
        module, _, name = dotted.rpartition(".")
        assert callable(getattr(importlib.import_module(module), name, None)), dotted
