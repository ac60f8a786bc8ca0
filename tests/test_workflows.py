"""The GitHub workflows and the Dockerfiles, as far as they can be checked without GitHub, AWS or
Docker: what they declare (parsed), and what their shell steps do when run with stand-ins for
``aws`` and ``docker`` that record every call."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from lockgate.config import load_settings

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = ROOT / ".github" / "workflows"
DOCKER = ROOT / "docker"
AWS_WORKFLOWS = ("data-pipeline-image", "sagemaker-image", "promote")
IMAGE_WORKFLOWS = {"data-pipeline-image": "data-prep", "sagemaker-image": "sagemaker"}
SHA = "0123456789abcdef0123456789abcdef01234567"
REGISTRY = "111122223333.dkr.ecr.eu-west-1.amazonaws.com"
DIGEST = "sha256:" + "ab" * 32


def workflow(name: str) -> dict[Any, Any]:
    document: dict[Any, Any] = yaml.safe_load((WORKFLOWS / f"{name}.yml").read_text())
    return document


def triggers(document: dict[Any, Any]) -> dict[str, Any]:
    """The ``on:`` mapping (YAML 1.1 reads the bare key ``on`` as True)."""
    on: dict[str, Any] = document[True]
    return on


def steps(document: dict[Any, Any]) -> Iterator[dict[str, Any]]:
    for job in document["jobs"].values():
        yield from job["steps"]


def step(document: dict[Any, Any], id_: str) -> dict[str, Any]:
    [found] = [s for s in steps(document) if s.get("id") == id_]
    return found


def uses(document: dict[Any, Any], action: str) -> list[dict[str, Any]]:
    return [s for s in steps(document) if s.get("uses", "").startswith(action + "@")]


# -- what the workflows declare ----------------------------------------------------------------


def test_every_action_is_pinned_to_a_commit() -> None:
    for path in sorted(WORKFLOWS.glob("*.yml")):
        for used in steps(yaml.safe_load(path.read_text())):
            if "uses" in used:
                assert re.fullmatch(r"[\w.-]+/[\w./-]+@[0-9a-f]{40}", used["uses"]), (path, used)


# The role each workflow assumes: the outputs ImagesRoleArn and PromoteRoleArn of the
# lockgate-github-oidc stack (tests/aws/test_github_oidc.py checks each job's subject is trusted).
ROLE_VARIABLES = {
    "data-pipeline-image": "AWS_IMAGES_ROLE_ARN",
    "sagemaker-image": "AWS_IMAGES_ROLE_ARN",
    "promote": "AWS_PROMOTE_ROLE_ARN",
}


@pytest.mark.parametrize("name", AWS_WORKFLOWS)
def test_aws_credentials_come_from_oidc_and_a_role_never_from_keys(name: str) -> None:
    document = workflow(name)
    text = (WORKFLOWS / f"{name}.yml").read_text()
    for key in ("aws-access-key-id", "aws-secret-access-key", "AWS_SECRET_ACCESS_KEY"):
        assert key not in text
    assert document["permissions"] == {"contents": "read"}  # nothing more by default
    [configure] = uses(document, "aws-actions/configure-aws-credentials")
    variable = ROLE_VARIABLES[name]
    assert configure["with"]["role-to-assume"] == f"${{{{ vars.{variable} }}}}"
    # the settings check names the variable the job really uses
    [check] = [s for s in steps(document) if "ROLE_ARN" in s.get("env", {})]
    assert check["env"]["ROLE_ARN"] == configure["with"]["role-to-assume"]
    assert f"set the variables {variable}" in check["run"]
    [job] = document["jobs"].values()
    assert job["permissions"] == {"contents": "read", "id-token": "write"}
    # a job in a GitHub environment: its OIDC subject is repo:<repo>:environment:<name>
    expected = "${{ inputs.to }}" if name == "promote" else "${{ inputs.environment || 'dev' }}"
    assert job["environment"] == expected


def test_ci_runs_make_test_and_keeps_the_coverage_report() -> None:
    document = workflow("ci")
    assert "id-token" not in json.dumps(document)  # pull requests' code gets no AWS token
    runs = [s["run"] for s in steps(document) if "run" in s]
    assert any(re.match(r"make test\b", run) for run in runs)
    [python] = uses(document, "actions/setup-python")
    assert python["with"]["python-version"] == "3.11"
    [artifact] = uses(document, "actions/upload-artifact")
    [codecov] = uses(document, "codecov/codecov-action")
    assert artifact["with"]["path"] == codecov["with"]["files"] == "coverage.xml"


def github_glob(pattern: str) -> re.Pattern[str]:
    """A paths filter pattern as GitHub reads it: ``**`` crosses folders, ``*`` does not."""
    parts = re.split(r"(\*\*|\*)", pattern)
    translated = {"**": ".*", "*": "[^/]*"}
    return re.compile("".join(translated.get(part, re.escape(part)) for part in parts))


def filtered_in(paths: list[str], path: str) -> bool:
    """Whether a push changing ``path`` runs the workflow: the last pattern that matches
    decides, and a ``!`` pattern takes the path out again (GitHub's rule)."""
    included = False
    for pattern in paths:
        negated = pattern.startswith("!")
        if github_glob(pattern.removeprefix("!")).fullmatch(path):
            included = not negated
    return included


HANDLERS = ("lambda_data", "image_sync", "processing", "lambda_monitor")


def test_the_data_pipeline_image_is_rebuilt_when_code_its_handlers_run_changes() -> None:
    """Every lockgate module the image's handlers import, found by importing them."""
    push = triggers(workflow("data-pipeline-image"))["push"]
    assert push["branches"] == ["main"]
    program = (
        "import importlib, json, sys\n"
        f"for name in {HANDLERS!r}: importlib.import_module('lockgate.aws.' + name)\n"
        "print(json.dumps(sorted(m.__file__ for n, m in sys.modules.items()"
        " if n.startswith('lockgate') and getattr(m, '__file__', None))))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, check=True, timeout=120
    )
    modules = [
        Path(file).resolve().relative_to(ROOT).as_posix() for file in json.loads(loaded.stdout)
    ]
    assert "src/lockgate/pipelines/data/prepare.py" in modules
    assert "src/lockgate/pipelines/monitoring/drift.py" in modules
    for path in [
        *modules,
        "docker/data-prep.Dockerfile",
        "pyproject.toml",
        "examples/lockgate.toml",
    ]:
        assert filtered_in(push["paths"], path), path
    for path in ("src/lockgate/serving/server.py", "src/lockgate/cli/app.py", "README.md"):
        assert not filtered_in(push["paths"], path), path


def test_every_workflow_runs_one_at_a_time_per_target() -> None:
    groups = {
        path.stem: yaml.safe_load(path.read_text())["concurrency"]
        for path in WORKFLOWS.glob("*.yml")
    }
    assert set(groups) == {"ci", *AWS_WORKFLOWS, "sagemaker-image"}
    assert groups["promote"] == {"group": "promote-${{ inputs.to }}", "cancel-in-progress": False}
    for name in IMAGE_WORKFLOWS:
        assert groups[name]["group"].endswith("${{ inputs.environment || 'dev' }}")
        assert groups[name]["cancel-in-progress"] is False  # never cut an update short


def test_promotion_waits_for_the_target_environments_reviewers_and_runs_lockgate_promote() -> None:
    document = workflow("promote")
    dispatch = triggers(document)["workflow_dispatch"]
    assert set(dispatch["inputs"]) >= {"model", "version", "to"}
    assert dispatch["inputs"]["to"]["options"] == ["staging", "prod"]
    [job] = document["jobs"].values()
    assert job["environment"] == "${{ inputs.to }}"
    [run] = [s["run"] for s in steps(document) if "lockgate promote" in s.get("name", "")]
    assert 'promote "$MODEL" "$VERSION" --to "$TO"' in run
    assert job["env"]["TO"] == "${{ inputs.to }}"


def test_the_config_baked_into_the_image_defaults_to_the_example_and_loads() -> None:
    job = workflow("data-pipeline-image")["jobs"]["image"]
    assert (
        job["env"]["CONFIG_FILE"] == "${{ vars.LOCKGATE_CONFIG_FILE || 'examples/lockgate.toml' }}"
    )
    settings = load_settings(ROOT / "examples" / "lockgate.toml", environ={})
    assert settings.dataset()[0] == "churn"
    assert settings.env_names == ["dev", "staging", "prod"]


# -- what the workflows' shell steps do ----------------------------------------------------------

AWS_STUB = """\
import json, os, sys
from pathlib import Path

state = Path(os.environ["STUB_STATE"])
args = sys.argv[1:]
with (state / "calls.jsonl").open("a") as log:
    log.write(json.dumps(["aws", *args]) + "\\n")
scenario = json.loads((state / "scenario.json").read_text())


def fail(code):
    print(f"An error occurred ({code}) when calling the operation", file=sys.stderr)
    sys.exit(254)


if args[:2] == ["ecr", "describe-images"]:
    wanted = args[args.index("--image-ids") + 1] == "imageTag=" + scenario["tag"]
    if wanted and (scenario["pushed"] or (state / "pushed").exists()):
        print(scenario["digest"])
        sys.exit(0)
    fail("ImageNotFoundException" if scenario["repository"] else "RepositoryNotFoundException")
if args[:2] == ["lambda", "get-function"]:
    if args[args.index("--function-name") + 1] not in scenario["functions"]:
        fail("ResourceNotFoundException")
    sys.exit(0)
if args[:2] == ["lambda", "update-function-code"]:
    conflicts = state / "conflicts"
    left = int(conflicts.read_text())
    if left:
        conflicts.write_text(str(left - 1))
        fail("ResourceConflictException")
    print("7")
    sys.exit(0)
if args[:2] in (["lambda", "wait"], ["lambda", "update-alias"]):
    sys.exit(0)
fail("UnexpectedCall")
"""

RECORDER = """\
import json, os, sys
from pathlib import Path

state = Path(os.environ["STUB_STATE"])
with (state / "calls.jsonl").open("a") as log:
    log.write(json.dumps([Path(sys.argv[0]).name, *sys.argv[1:]]) + "\\n")
if "--push" in sys.argv:
    (state / "pushed").touch()
"""


def expand(text: str, context: dict[str, Any]) -> str:
    """``${{ a.b || 'literal' }}`` expressions, as far as these workflows use them."""

    def value(match: re.Match[str]) -> str:
        for term in match.group(1).split("||"):
            term = term.strip()
            if term.startswith("'"):
                return term.strip("'")
            found: Any = context
            for part in term.split("."):
                found = found.get(part) if isinstance(found, dict) else None
            if found:
                return str(found)
        return ""

    return re.sub(r"\$\{\{\s*(.*?)\s*\}\}", value, text)


@dataclass
class Run:
    returncode: int
    stdout: str
    calls: list[list[str]]
    outputs: dict[str, str]
    summary: str


@dataclass
class Runner:
    """Runs a workflow step's script with bash -e, as GitHub's ubuntu runners do, with ``aws``,
    ``docker`` and ``sleep`` replaced by recorders on PATH."""

    state: Path
    context: dict[str, Any]

    def run(self, document: dict[Any, Any], step_id: str) -> Run:
        job = next(iter(document["jobs"].values()))
        script = step(document, step_id)
        env = {
            k: expand(str(v), self.context)
            for k, v in {**job["env"], **script.get("env", {})}.items()
        }
        output = self.state / f"{step_id}.out"
        summary = self.state / "summary.md"
        (self.state / "calls.jsonl").write_text("")
        done = subprocess.run(
            ["bash", "-e", "-c", script["run"]],
            env={
                **os.environ,
                **env,
                "PATH": f"{self.state / 'bin'}{os.pathsep}{os.environ['PATH']}",
                "STUB_STATE": str(self.state),
                "GITHUB_OUTPUT": str(output),
                "GITHUB_STEP_SUMMARY": str(summary),
            },
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
        lines = (self.state / "calls.jsonl").read_text().splitlines()
        text = output.read_text() if output.exists() else ""
        outputs = dict(line.split("=", 1) for line in text.splitlines())
        self.context["steps"][step_id] = {"outputs": outputs}
        return Run(
            done.returncode,
            done.stdout + done.stderr,
            [json.loads(line) for line in lines],
            outputs,
            summary.read_text() if summary.exists() else "",
        )


@pytest.fixture
def runner(tmp_path: Path) -> Runner:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, source in (("aws", AWS_STUB), ("docker", RECORDER), ("sleep", RECORDER)):
        (bin_dir / name).write_text(f"#!{sys.executable}\n{source}")
        (bin_dir / name).chmod(0o755)
    (tmp_path / "conflicts").write_text("0")
    scenario(tmp_path)
    context = {
        "github": {"sha": SHA},
        "inputs": {},
        "vars": {},
        "steps": {"ecr": {"outputs": {"registry": REGISTRY}}},
    }
    return Runner(tmp_path, context)


def scenario(state: Path, **changes: Any) -> None:
    document = {
        "pushed": False,
        "repository": True,
        "tag": f"sha-{SHA}",
        "digest": DIGEST,
        "functions": [],
    }
    (state / "scenario.json").write_text(json.dumps({**document, **changes}))


@pytest.mark.parametrize(("name", "image"), sorted(IMAGE_WORKFLOWS.items()))
def test_the_image_is_built_for_lambda_and_sagemaker_and_pushed_as_sha_commit(
    runner: Runner, name: str, image: str
) -> None:
    done = runner.run(workflow(name), "push")
    assert done.returncode == 0, done.stdout
    [docker] = [call for call in done.calls if call[0] == "docker"]
    repository = f"{REGISTRY}/lockgate-dev-{image}"
    assert docker[:3] == ["docker", "buildx", "build"]
    assert "--provenance=false" in docker and "--push" in docker
    assert docker[docker.index("--platform") + 1] == "linux/amd64"
    assert docker[docker.index("--file") + 1] == f"docker/{image}.Dockerfile"
    assert docker[docker.index("--tag") + 1] == f"{repository}:sha-{SHA}"
    assert f"{repository}@{DIGEST}" in done.summary
    if image == "data-prep":
        assert (
            docker[docker.index("--build-arg") + 1] == "LOCKGATE_CONFIG_FILE=examples/lockgate.toml"
        )
        assert done.outputs == {"image-uri": f"{repository}@{DIGEST}"}


def test_an_image_pushed_before_is_reused_not_rebuilt(runner: Runner) -> None:
    scenario(runner.state, pushed=True)
    done = runner.run(workflow("data-pipeline-image"), "push")
    assert done.returncode == 0, done.stdout
    assert not [call for call in done.calls if call[0] == "docker"]
    assert done.outputs["image-uri"].endswith(f"@{DIGEST}")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"repository": False},
            "no ECR repository lockgate-dev-data-prep: run 'lockgate aws deploy --env dev' first",
        ),
        ({"digest": "None"}, "ECR gave no digest for"),
    ],
)
def test_a_push_that_cannot_name_a_digest_fails(
    runner: Runner, changes: dict[str, Any], message: str
) -> None:
    scenario(runner.state, **changes)
    done = runner.run(workflow("data-pipeline-image"), "push")
    assert done.returncode == 1
    assert message in done.stdout
    assert "image-uri" not in done.outputs


def lambda_calls(calls: list[list[str]]) -> list[list[str]]:
    return [call[2:] for call in calls if call[:2] == ["aws", "lambda"]]


def test_the_functions_are_updated_by_digest_published_and_their_live_alias_moved(
    runner: Runner,
) -> None:
    document = workflow("data-pipeline-image")
    scenario(runner.state, functions=["lockgate-dev-data-prep", "lockgate-dev-monitor"])
    assert runner.run(document, "push").returncode == 0
    (runner.state / "conflicts").write_text("1")  # the image-sync function is updating it
    done = runner.run(document, "lambda")
    assert done.returncode == 0, done.stdout
    uri = f"{REGISTRY}/lockgate-dev-data-prep@{DIGEST}"
    for function in ("lockgate-dev-data-prep", "lockgate-dev-monitor"):
        calls = [
            c for c in lambda_calls(done.calls) if c[c.index("--function-name") + 1] == function
        ]
        updates = [c for c in calls if c[0] == "update-function-code"]
        assert all(c[c.index("--image-uri") + 1] == uri and "--publish" in c for c in updates)
        kinds = [c[0] if c[0] != "wait" else f"wait {c[1]}" for c in calls]
        assert kinds[-4:] == [
            "update-function-code",
            "wait function-updated-v2",
            "wait function-active-v2",
            "update-alias",
        ]
        assert kinds[kinds.index("update-function-code") - 1] == "wait function-updated-v2"
        active, alias = calls[-2], calls[-1]
        assert active[active.index("--qualifier") + 1] == "7"
        assert alias[alias.index("--name") + 1 :] == ["live", "--function-version", "7"]
    assert len([c for c in lambda_calls(done.calls) if c[0] == "update-function-code"]) == 3
    assert "lockgate-dev-data-prep: alias live -> version 7" in done.summary


def test_an_environment_not_deployed_yet_is_a_notice_not_a_failure(runner: Runner) -> None:
    document = workflow("data-pipeline-image")
    assert runner.run(document, "push").returncode == 0
    done = runner.run(document, "lambda")
    assert done.returncode == 0, done.stdout
    assert not [c for c in lambda_calls(done.calls) if c[0] != "get-function"]
    assert done.stdout.count("::notice title=lockgate-dev-") == 2
    assert "run 'lockgate aws deploy --env dev'" in done.stdout


def test_a_lasting_conflict_fails_the_update(runner: Runner) -> None:
    document = workflow("data-pipeline-image")
    scenario(runner.state, functions=["lockgate-dev-data-prep"])
    assert runner.run(document, "push").returncode == 0
    (runner.state / "conflicts").write_text("9")
    done = runner.run(document, "lambda")
    assert done.returncode == 1
    assert "ResourceConflictException" in done.stdout
    assert not [c for c in lambda_calls(done.calls) if c[0] == "update-alias"]
