"""The GitHub OIDC roles (github-oidc.yaml), evaluated as CloudFormation and IAM would.

The template is resolved for given parameters (Ref, Sub, If, Select, Split, Equals, Not, and
AWS::NoValue dropping a list item), and its policies are asked questions the way IAM answers
them: an explicit Deny wins, else some Allow statement must match the action, the resource and
every condition. So the tests read like what a workflow would meet on AWS: which GitHub jobs get
a role, and what that role may do. What only AWS can check (the OIDC exchange itself, the
actions IAM really authorizes per call) is listed in docs/aws.md.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.aws.cfn import as_list, load
from tests.aws.iam_eval import (
    ACCOUNT,
    ISSUER,
    REPO,
    actions,
    allows,
    bucket,
    conditions_hold,
    like,
    resolve,
    role,
    sagemaker,
    trust,
)

ROOT = Path(__file__).resolve().parents[2]


# -- who may assume each role --------------------------------------------------------------------


def token(subject: str, audience: str = "sts.amazonaws.com") -> dict[str, str]:
    """The claims of a GitHub OIDC token that the trust policies test."""
    return {f"{ISSUER}:aud": audience, f"{ISSUER}:sub": subject}


@pytest.mark.parametrize(
    ("given", "environments"),
    [
        ({}, ["dev", "staging", "prod"]),
        ({"ImageEnvironments": "prod"}, ["prod"]),
        ({"ImageEnvironments": "qa,staging,prod,eu-prod"}, ["qa", "staging", "prod", "eu-prod"]),
        ({"EnvName": "dev"}, ["dev"]),
        # an environment name as EnvName: that environment alone, whatever the list says
        ({"EnvName": "qa", "ImageEnvironments": "staging,prod"}, ["qa"]),
    ],
    ids=["defaults", "one", "four", "EnvName dev", "EnvName qa, list ignored"],
)
def test_the_images_role_trusts_exactly_main_and_the_image_environments(
    given: dict[str, str], environments: list[str]
) -> None:
    statement = trust(role("ImagesRole", **given))
    assert statement["Action"] == "sts:AssumeRoleWithWebIdentity"
    assert statement["Principal"] == {"Federated": "<GitHubOidcProvider>"}
    trusted = [
        f"repo:{REPO}:ref:refs/heads/main",
        *(f"repo:{REPO}:environment:{e}" for e in environments),
    ]
    assert statement["Condition"] == {
        "StringEquals": {f"{ISSUER}:aud": "sts.amazonaws.com", f"{ISSUER}:sub": trusted}
    }
    assert not [s for s in trusted if "*" in s or "?" in s]
    for subject in trusted:
        assert conditions_hold(statement["Condition"], token(subject)), subject
    assert not conditions_hold(statement["Condition"], token(trusted[0], audience="sigstore"))
    for stranger in (
        f"repo:{REPO}:pull_request",
        f"repo:{REPO}:ref:refs/heads/feature",
        f"repo:{REPO}:ref:refs/tags/v1",
        # any branch can name an environment GitHub then creates, unprotected
        f"repo:{REPO}:environment:scratch",
        f"repo:{REPO}:environment:*",
        f"repo:{REPO}:*",
        f"repo:{REPO}:environment:{environments[0]}-x",
        "repo:acme/other:ref:refs/heads/main",
        f"repo:acme/other:environment:{environments[0]}",
    ):
        assert not conditions_hold(statement["Condition"], token(stranger)), stranger


@pytest.mark.parametrize(
    ("promote", "environments"),
    [
        (None, ["staging", "prod"]),
        ("prod", ["prod"]),
        ("qa,staging,prod,eu-prod", ["qa", "staging", "prod", "eu-prod"]),
    ],
)
def test_the_promote_role_trusts_exactly_the_promotion_environments(
    promote: str | None, environments: list[str]
) -> None:
    given = {"PromoteEnvironments": promote} if promote else {}
    statement = trust(role("PromoteRole", **given))
    assert statement["Principal"] == {"Federated": "<GitHubOidcProvider>"}
    assert statement["Condition"] == {
        "StringEquals": {
            f"{ISSUER}:aud": "sts.amazonaws.com",
            f"{ISSUER}:sub": [f"repo:{REPO}:environment:{e}" for e in environments],
        }
    }


@pytest.mark.parametrize("parameter", ["ImageEnvironments", "PromoteEnvironments"])
def test_image_and_promotion_environments_are_one_to_four_names(parameter: str) -> None:
    pattern = load("github-oidc.yaml")["Parameters"][parameter]["AllowedPattern"]
    for right in ("prod", "staging,prod", "dev,staging,prod,eu-prod"):
        assert re.fullmatch(pattern, right), right
    for wrong in ("", "staging,", "staging, prod", "a,b,c,d,e", "*", "Prod", "staging,*", "dev*"):
        assert not re.fullmatch(pattern, wrong), wrong


def test_the_repository_parameter_names_one_repository() -> None:
    pattern = load("github-oidc.yaml")["Parameters"]["GitHubRepository"]["AllowedPattern"]
    assert re.fullmatch(pattern, REPO)
    for wrong in ("acme", "acme/*", "acme/churn:*", "acme/churn/x", "*/*"):
        assert not re.fullmatch(pattern, wrong), wrong


# -- what each workflow job's token says, against the role it assumes ----------------------------

ROLES = {"AWS_IMAGES_ROLE_ARN": "ImagesRole", "AWS_PROMOTE_ROLE_ARN": "PromoteRole"}


def job_subjects(job: dict[str, Any], on: dict[str, Any]) -> list[str]:
    """The OIDC ``sub`` claims GitHub gives this job for each way the workflow starts."""
    environment = job.get("environment")
    if environment is None:
        branches = (on.get("push") or {}).get("branches", ["main"])
        subjects = [f"repo:{REPO}:ref:refs/heads/{branch}" for branch in branches]
        if "pull_request" in on or "pull_request_target" in on:
            subjects.append(f"repo:{REPO}:pull_request")
        return subjects
    expression = re.fullmatch(r"\$\{\{\s*(.*?)\s*\}\}", str(environment))
    if expression is None:
        return [f"repo:{REPO}:environment:{environment}"]
    inputs = on.get("workflow_dispatch", {}).get("inputs", {})
    names = set()
    for term in (t.strip() for t in expression.group(1).split("||")):
        if term.startswith("'"):
            names.add(term.strip("'"))  # the push trigger has no inputs: the fallback
        else:
            field = inputs[term.removeprefix("inputs.")]
            names.update(field.get("options") or [field["default"]])
    return [f"repo:{REPO}:environment:{name}" for name in sorted(names)]


def assumed(job: dict[str, Any]) -> str:
    [configure] = [
        s for s in job["steps"] if s.get("uses", "").startswith("aws-actions/configure-aws")
    ]
    variable = re.fullmatch(r"\$\{\{ vars\.(\w+) \}\}", configure["with"]["role-to-assume"])
    assert variable, configure
    return ROLES[variable.group(1)]


def aws_jobs() -> list[tuple[str, str, dict[str, Any], dict[str, Any]]]:
    """(workflow, job id, job, triggers) of every workflow job that gets AWS credentials."""
    found = []
    for path in sorted((ROOT / ".github" / "workflows").glob("*.y*ml")):
        document = yaml.safe_load(path.read_text())
        for job_id, job in document["jobs"].items():
            steps = job.get("steps", [])
            if any(s.get("uses", "").startswith("aws-actions/configure-aws") for s in steps):
                found.append((path.stem, job_id, job, document[True]))  # YAML 1.1: `on` is True
    return found


AWS_JOBS = aws_jobs()


def test_the_image_and_promote_workflows_are_the_jobs_that_get_aws_credentials() -> None:
    assert {(workflow, assumed(job)) for workflow, _, job, _ in AWS_JOBS} == {
        ("data-pipeline-image", "ImagesRole"),
        ("sagemaker-image", "ImagesRole"),
        ("promote", "PromoteRole"),
    }


@pytest.mark.parametrize(
    ("job", "on"),
    [(job, on) for _, _, job, on in AWS_JOBS],
    ids=[f"{w}.{j}" for w, j, *_ in AWS_JOBS],
)
def test_every_aws_job_gets_a_subject_its_role_trusts(
    job: dict[str, Any], on: dict[str, Any]
) -> None:
    statement = trust(role(assumed(job)))  # the default parameters
    subjects = job_subjects(job, on)
    assert subjects
    for subject in subjects:
        assert conditions_hold(statement["Condition"], token(subject)), (subject, statement)


def test_the_image_jobs_default_to_dev_and_promote_runs_in_its_target() -> None:
    subjects = {workflow: job_subjects(job, on) for workflow, _, job, on in AWS_JOBS}
    assert subjects["data-pipeline-image"] == [f"repo:{REPO}:environment:dev"]
    assert subjects["sagemaker-image"] == [f"repo:{REPO}:environment:dev"]
    assert subjects["promote"] == [f"repo:{REPO}:environment:{e}" for e in ("prod", "staging")]


# -- what each role may do -----------------------------------------------------------------------


def test_the_images_role_pushes_images_and_moves_data_prep_and_monitor_only() -> None:
    images = role("ImagesRole", EnvName="dev")
    assert {a.split(":")[0] for a in actions(images)} == {"ecr", "lambda", "cloudformation"}
    repository = f"arn:aws:ecr:eu-west-1:{ACCOUNT}:repository/lockgate-dev-data-prep"
    assert allows(images, "ecr:PutImage", repository)
    assert allows(images, "ecr:GetAuthorizationToken", "*")
    assert not allows(images, "ecr:PutImage", repository.replace("-dev-", "-prod-"))
    function = f"arn:aws:lambda:eu-west-1:{ACCOUNT}:function:lockgate-dev-"
    for short in ("data-prep", "monitor"):
        assert allows(images, "lambda:UpdateFunctionCode", function + short)
        assert allows(images, "lambda:UpdateAlias", function + short + ":live")
        assert allows(images, "lambda:GetFunction", function + short + ":7")
    assert not allows(images, "lambda:UpdateFunctionCode", function + "image-sync")
    assert not allows(images, "lambda:InvokeFunction", function + "data-prep")
    stack = f"arn:aws:cloudformation:eu-west-1:{ACCOUNT}:stack/lockgate-dev/0a1b"
    assert allows(images, "cloudformation:DescribeStacks", stack)
    assert not allows(images, "cloudformation:UpdateStack", stack)


def reaches(images: dict[str, Any], env: str) -> dict[str, bool]:
    """What the images role may do to one lockgate environment's images, functions and stacks."""
    repository = f"arn:aws:ecr:eu-west-1:{ACCOUNT}:repository/lockgate-{env}-"
    function = f"arn:aws:lambda:eu-west-1:{ACCOUNT}:function:lockgate-{env}-"
    stack = f"arn:aws:cloudformation:eu-west-1:{ACCOUNT}:stack/lockgate-{env}"
    return {
        "push data-prep": allows(images, "ecr:PutImage", repository + "data-prep"),
        "push sagemaker": allows(images, "ecr:PutImage", repository + "sagemaker"),
        "update data-prep": allows(images, "lambda:UpdateFunctionCode", function + "data-prep"),
        "move data-prep": allows(images, "lambda:UpdateAlias", function + "data-prep:live"),
        "update monitor": allows(images, "lambda:UpdateFunctionCode", function + "monitor"),
        "move monitor": allows(images, "lambda:UpdateAlias", function + "monitor:live"),
        "read stack": allows(images, "cloudformation:DescribeStacks", stack + "/0a1b"),
        "read images stack": allows(images, "cloudformation:DescribeStacks", stack + "-images/0a"),
    }


@pytest.mark.parametrize(
    ("given", "reached", "others"),
    [
        ({}, ["dev", "staging", "prod"], ["scratch", "qa", "dev-eu"]),
        ({"ImageEnvironments": "qa"}, ["qa"], ["dev", "staging", "prod", "qa-x"]),
        (
            {"ImageEnvironments": "qa,staging,prod,eu-prod"},
            ["qa", "staging", "prod", "eu-prod"],
            ["dev"],
        ),
        ({"EnvName": "dev", "ImageEnvironments": "staging,prod"}, ["dev"], ["staging", "prod"]),
    ],
    ids=["defaults", "one", "four", "EnvName dev, list ignored"],
)
def test_the_images_role_reaches_the_image_environments_and_no_other(
    given: dict[str, str], reached: list[str], others: list[str]
) -> None:
    images = role("ImagesRole", **given)
    for env in reached:
        assert all(reaches(images, env).values()), (env, reaches(images, env))
    for env in others:
        assert not any(reaches(images, env).values()), (env, reaches(images, env))
    # every name it may touch is one of those environments', none a lockgate-* pattern
    named = re.compile(rf"lockgate-({'|'.join(reached)})[-/]")
    for policy in images["Policies"]:
        for statement in policy["PolicyDocument"]["Statement"]:
            for resource in as_list(statement["Resource"]):
                if statement["Action"] == "ecr:GetAuthorizationToken":
                    assert resource == "*"
                    continue
                assert named.search(resource), resource
                assert "lockgate-*" not in resource, resource


def test_each_image_environment_gets_exactly_what_the_first_gets() -> None:
    environments = ["qa", "staging", "prod", "eu-prod"]
    images = role("ImagesRole", ImageEnvironments=",".join(environments))
    documents = {p["PolicyName"]: p["PolicyDocument"] for p in images["Policies"]}
    slots = [f"lockgate-images-environment-{n}" for n in (1, 2, 3, 4)]
    assert list(documents) == ["lockgate-registry-login", *slots]
    first = json.dumps(documents[slots[0]])
    for slot, env in zip(slots[1:], environments[1:], strict=True):
        text = json.dumps(documents[slot])
        assert f"lockgate-{env}-data-prep" in text, slot
        assert "lockgate-qa" not in text, slot
        renamed = text.replace(f"lockgate-{env}-", "lockgate-qa-").replace(
            f"lockgate-{env}/", "lockgate-qa/"
        )
        assert renamed == first, slot
    fewer = role("ImagesRole", ImageEnvironments="staging,prod")
    assert [p["PolicyName"] for p in fewer["Policies"]] == ["lockgate-registry-login", *slots[:2]]


@pytest.mark.parametrize("name", ["data-pipeline-image", "sagemaker-image"])
def test_the_images_role_allows_every_aws_call_the_image_workflows_make(name: str) -> None:
    document = yaml.safe_load((ROOT / ".github" / "workflows" / f"{name}.yml").read_text())
    scripts = "\n".join(s.get("run", "") for s in yaml_steps(document))
    calls = set(re.findall(r"\baws (ecr|lambda) ([a-z][a-z0-9-]*)(?: ([a-z][a-z0-9-]*))?", scripts))
    assert ("ecr", "describe-images", "") in calls
    images = role("ImagesRole")
    repository = f"arn:aws:ecr:eu-west-1:{ACCOUNT}:repository/lockgate-dev-"
    repository += "data-prep" if name == "data-pipeline-image" else "sagemaker"
    function = f"arn:aws:lambda:eu-west-1:{ACCOUNT}:function:lockgate-dev-"
    for service, command, waiter in sorted(calls):
        # the CLI's function-*-v2 waiters poll GetFunction (with the version as qualifier)
        action = "GetFunction" if command == "wait" else command.title().replace("-", "")
        for resource in (
            [repository]
            if service == "ecr"
            else [function + f for f in ("data-prep", "monitor", "data-prep:7", "monitor:7")]
        ):
            assert allows(images, f"{service}:{action}", resource), (command, waiter, resource)
    # aws-actions/amazon-ecr-login and docker push; Lambda reads the image as its updater
    for action in ("BatchCheckLayerAvailability", "InitiateLayerUpload", "UploadLayerPart"):
        assert allows(images, f"ecr:{action}", repository)
    for action in ("CompleteLayerUpload", "PutImage", "BatchGetImage", "GetDownloadUrlForLayer"):
        assert allows(images, f"ecr:{action}", repository)
    assert allows(images, "ecr:GetAuthorizationToken", "*")


def yaml_steps(document: dict[Any, Any]) -> list[dict[str, Any]]:
    return [step for job in document["jobs"].values() for step in job["steps"]]


@pytest.mark.parametrize("env", ["all", "dev"])
def test_the_images_role_cannot_reach_sagemaker_s3_kms_or_pass_a_role(env: str) -> None:
    images = role("ImagesRole", EnvName=env)
    for action, resource in [
        ("s3:GetObject", bucket("dev") + "/models/churn/1/package.json"),
        ("s3:PutObject", bucket("dev") + "/raw/churn/x.csv"),
        ("sagemaker:CreateEndpoint", sagemaker("endpoint", "lockgate-dev")),
        ("sagemaker:CreateTrainingJob", sagemaker("training-job", "lockgate-dev-1")),
        ("kms:Decrypt", f"arn:aws:kms:eu-west-1:{ACCOUNT}:key/0a1b"),
        ("iam:PassRole", f"arn:aws:iam::{ACCOUNT}:role/lockgate-dev-sagemaker"),
    ]:
        to = {"iam:PassedToService": "sagemaker.amazonaws.com"}
        assert not allows(images, action, resource, **to), action


def test_the_promote_role_reads_the_registry_and_writes_the_targets_stores() -> None:
    promote = role("PromoteRole")
    assert {a.split(":")[0] for a in actions(promote)} == {"s3", "kms", "sagemaker", "iam"}
    package = "/models/churn/3/package.json"
    assert allows(promote, "s3:GetObject", bucket("dev") + package)
    assert allows(promote, "s3:ListBucket", bucket("dev"))
    for target in ("staging", "prod"):
        # the package, the baseline, the run and release records; multipart for big files
        for action in ("s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload"):
            assert allows(promote, action, bucket(target) + package), (action, target)
        assert allows(promote, "s3:ListBucket", bucket(target))
        assert not allows(promote, "s3:DeleteObject", bucket(target) + package)
    # the registry's ledger (approvals) is never written, though EnvName all matches its bucket
    assert not allows(promote, "s3:PutObject", bucket("dev") + "/ledger/approvals/x.json")
    assert not allows(promote, "s3:GetObject", f"arn:aws:s3:::someone-else{package}")
    assert not allows(promote, "s3:GetObject", f"arn:aws:s3:::lockgate-dev-999999999999-x{package}")


def test_the_promote_role_uses_the_stores_keys_only_through_s3_for_those_buckets() -> None:
    key = f"arn:aws:kms:eu-west-1:{ACCOUNT}:key/0a1b2c3d"
    via = "s3.eu-west-1.amazonaws.com"

    def use(promote: dict[str, Any], action: str, store: str, service: str = via) -> bool:
        context = {"kms:ViaService": service, "kms:EncryptionContext:aws:s3:arn": store}
        return allows(promote, action, key, **context)

    every = role("PromoteRole")
    assert use(every, "kms:Decrypt", bucket("dev")) and use(every, "kms:Decrypt", bucket("prod"))
    assert use(every, "kms:Decrypt", bucket("prod") + "/models/churn/3/model.tar.gz")
    assert use(every, "kms:GenerateDataKey", bucket("staging"))
    assert not use(every, "kms:Decrypt", bucket("dev"), service="sqs.eu-west-1.amazonaws.com")
    assert not allows(every, "kms:Decrypt", key)  # a direct call, not through S3
    assert not use(every, "kms:Decrypt", "arn:aws:s3:::someone-else")
    # scoped to prod: the registry's key only decrypts, another target's not at all
    prod = role("PromoteRole", EnvName="prod", PromoteEnvironments="prod")
    assert use(prod, "kms:Decrypt", bucket("dev")) and use(
        prod, "kms:GenerateDataKey", bucket("prod")
    )
    assert not use(prod, "kms:GenerateDataKey", bucket("dev"))
    assert not use(prod, "kms:Decrypt", bucket("staging"))


def test_the_promote_role_passes_only_the_sagemaker_roles_and_only_to_sagemaker() -> None:
    for env, targets in (("all", ["staging", "prod"]), ("prod", ["prod"])):
        promote = role("PromoteRole", EnvName=env)
        passing = [
            s
            for policy in promote["Policies"]
            for s in policy["PolicyDocument"]["Statement"]
            if any(like(a, "iam:PassRole", case=False) for a in as_list(s["Action"]))
        ]
        assert [s["Action"] for s in passing] == ["iam:PassRole"]
        assert passing[0]["Condition"] == {
            "StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}
        }
        for target in targets:
            execution = f"arn:aws:iam::{ACCOUNT}:role/lockgate-{target}-sagemaker"
            to = "iam:PassedToService"
            assert allows(promote, "iam:PassRole", execution, **{to: "sagemaker.amazonaws.com"})
            assert not allows(promote, "iam:PassRole", execution, **{to: "lambda.amazonaws.com"})
            assert not allows(promote, "iam:PassRole", execution)
            for other in ("data-prep", "image-sync", "monitor", "scheduler"):
                other_role = execution.replace("-sagemaker", f"-{other}")
                sagemaker_service = {to: "sagemaker.amazonaws.com"}
                assert not allows(promote, "iam:PassRole", other_role, **sagemaker_service)
        assert not {a for a in actions(promote) if a.startswith("iam:")} - {"iam:PassRole"}


def test_the_promote_role_allows_every_sagemaker_call_the_endpoint_adapter_makes() -> None:
    source = (ROOT / "src/lockgate/aws/sagemaker_endpoint.py").read_text()
    operations = set(re.findall(r'self\._call\(\s*"(\w+)"', source))
    assert {"create_model", "create_endpoint", "update_endpoint"} <= operations
    called = {"sagemaker:" + "".join(p.title() for p in op.split("_")) for op in operations}
    called.add("sagemaker:AddTags")  # CreateModel and CreateEndpointConfig pass Tags
    # what each call names, as lockgate names it for the endpoint lockgate-<env>
    model = sagemaker("model", "lockgate-prod-v3-0a1b2c3d-4e5f6a")
    config = sagemaker("endpoint-config", "lockgate-prod-v3-0a1b2c3d-4e5f6a")
    endpoint = sagemaker("endpoint", "lockgate-prod")

    def named(action: str) -> list[str]:
        if action == "sagemaker:AddTags":
            return [model, config]
        if "EndpointConfig" in action or action == "sagemaker:ListTags":
            return [config]
        return [endpoint] if "Endpoint" in action else [model]

    for env in ("all", "prod"):
        promote = role("PromoteRole", EnvName=env)
        for action in sorted(called):
            for resource in named(action):
                assert allows(promote, action, resource), (env, action, resource)
        assert {a for a in actions(promote) if a.startswith("sagemaker:")} == called
        assert not allows(promote, "sagemaker:UpdateEndpoint", sagemaker("endpoint", "churn"))
        assert not allows(promote, "sagemaker:CreateTrainingJob", sagemaker("training-job", "x"))
    prod_only = role("PromoteRole", EnvName="prod", PromoteEnvironments="prod")
    staging_endpoint = sagemaker("endpoint", "lockgate-staging")
    assert not allows(prod_only, "sagemaker:UpdateEndpoint", staging_endpoint)
    assert not allows(prod_only, "s3:PutObject", bucket("staging") + "/ledger/x.json")


# -- the stack's outputs and no long-lived keys --------------------------------------------------


def test_the_stack_names_both_roles_and_creates_no_user_or_key() -> None:
    template = load("github-oidc.yaml")
    resolved = resolve(template, GitHubRepository=REPO)
    assert resolved["ImagesRole"]["Properties"]["RoleName"] == "lockgate-github-images-all"
    assert resolved["PromoteRole"]["Properties"]["RoleName"] == "lockgate-github-promote-all"
    assert set(template["Outputs"]) == {"ImagesRoleArn", "PromoteRoleArn", "OidcProviderArn"}
    assert template["Outputs"]["PromoteRoleArn"]["Value"] == {"Fn::GetAtt": ["PromoteRole", "Arn"]}
    assert resolved["GitHubOidcProvider"]["Properties"] == {
        "Url": f"https://{ISSUER}",
        "ClientIdList": ["sts.amazonaws.com"],
    }
    existing = f"arn:aws:iam::{ACCOUNT}:oidc-provider/{ISSUER}"
    reused = resolve(template, GitHubRepository=REPO, ExistingOidcProviderArn=existing)
    assert "GitHubOidcProvider" not in reused
    assert trust(reused["PromoteRole"]["Properties"])["Principal"] == {"Federated": existing}
    for name in ("environment.yaml", "images.yaml", "github-oidc.yaml"):
        kinds = {r["Type"] for r in load(name)["Resources"].values()}
        assert not kinds & {"AWS::IAM::User", "AWS::IAM::AccessKey"}, name
