"""CloudFormation and IAM evaluated in tests, as far as lockgate's GitHub OIDC template uses
them: intrinsic functions resolved for given parameters, and policies asked what IAM would
answer (an explicit Deny wins, else an Allow must match action, resource and conditions)."""

from __future__ import annotations

import re
from typing import Any

from tests.aws.cfn import as_list, load

REPO = "acme/churn-model"
ACCOUNT = "123456789012"
PSEUDO = {"AWS::Partition": "aws", "AWS::AccountId": ACCOUNT, "AWS::Region": "eu-west-1"}
NO_VALUE = object()
ISSUER = "token.actions.githubusercontent.com"


# -- CloudFormation, as far as this template uses it --------------------------------------------


def resolve(template: dict[str, Any], **given: str) -> dict[str, Any]:
    """The template's resources with its intrinsic functions evaluated for ``given``."""
    params = {k: str(p.get("Default", "")) for k, p in template["Parameters"].items()}
    for name, text in given.items():
        assert name in params, name
        assert re.fullmatch(template["Parameters"][name]["AllowedPattern"], text), (name, text)
        params[name] = text
    params |= PSEUDO
    conditions: dict[str, bool] = {}

    def value(node: Any) -> Any:
        if isinstance(node, list):
            return [v for v in (value(item) for item in node) if v is not NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            [(key, arg)] = node.items()
            if key == "Ref":
                if arg == "AWS::NoValue":
                    return NO_VALUE
                return params.get(arg, f"<{arg}>")  # a resource: its logical id stands in
            if key == "Condition":
                return conditions[arg]
            if key == "Fn::If":
                name, yes, no = arg
                return value(yes if conditions[name] else no)
            if key == "Fn::Equals":
                left, right = (value(a) for a in arg)
                return left == right
            if key == "Fn::Not":
                return not value(arg[0])
            if key == "Fn::And":
                return all(value(a) for a in arg)
            if key == "Fn::Select":
                return value(arg[1])[int(arg[0])]
            if key == "Fn::Split":
                return value(arg[1]).split(arg[0])
            if key == "Fn::Sub":
                text, names = (arg, {}) if isinstance(arg, str) else arg
                names = {**params, **{k: value(v) for k, v in names.items()}}
                return re.sub(r"\$\{([\w:]+)\}", lambda m: names[m.group(1)], text)
            if key == "Fn::GetAtt":
                return f"<{'.'.join(arg)}>"
        return {k: v for k, v in ((k, value(v)) for k, v in node.items()) if v is not NO_VALUE}

    for name, expression in template["Conditions"].items():
        conditions[name] = value(expression)
    return {
        k: value(r)
        for k, r in template["Resources"].items()
        if conditions.get(r.get("Condition"), 1)
    }


def role(name: str, **given: str) -> dict[str, Any]:
    """One role's resolved properties."""
    resolved = resolve(load("github-oidc.yaml"), GitHubRepository=REPO, **given)
    properties: dict[str, Any] = resolved[name]["Properties"]
    return properties


def trust(role_properties: dict[str, Any]) -> dict[str, Any]:
    (statement,) = role_properties["AssumeRolePolicyDocument"]["Statement"]
    return dict(statement)


# -- IAM, as far as these policies use it ----------------------------------------------------------


def like(pattern: str, text: str, *, case: bool = True) -> bool:
    """IAM's wildcard match: ``*`` any run of characters (``/`` included), ``?`` one."""
    translated = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(translated, text, 0 if case else re.IGNORECASE) is not None


def conditions_hold(condition: dict[str, Any], context: dict[str, str]) -> bool:
    for operator, tests in condition.items():
        for key, expected in tests.items():
            if key not in context:
                return False
            values = [str(v) for v in as_list(expected)]
            if operator == "StringEquals":
                ok = context[key] in values
            elif operator == "StringLike":
                ok = any(like(v, context[key]) for v in values)
            else:
                raise AssertionError(f"no evaluator for {operator}")
            if not ok:
                return False
    return True


def allows(role_properties: dict[str, Any], action: str, resource: str, **context: str) -> bool:
    """Whether the role's inline policies allow ``action`` on ``resource`` in ``context``."""

    def matches(statement: dict[str, Any]) -> bool:
        return (
            any(like(a, action, case=False) for a in as_list(statement["Action"]))
            and any(like(r, resource) for r in as_list(statement["Resource"]))
            and conditions_hold(statement.get("Condition", {}), context)
        )

    found = [
        statement
        for policy in role_properties["Policies"]
        for statement in policy["PolicyDocument"]["Statement"]
        if matches(statement)
    ]
    if any(s["Effect"] == "Deny" for s in found):
        return False
    return any(s["Effect"] == "Allow" for s in found)


def actions(role_properties: dict[str, Any]) -> set[str]:
    return {
        action
        for policy in role_properties["Policies"]
        for statement in policy["PolicyDocument"]["Statement"]
        if statement["Effect"] == "Allow"
        for action in as_list(statement["Action"])
    }


def bucket(env: str) -> str:
    return f"arn:aws:s3:::lockgate-{env}-{ACCOUNT}-eu-west-1"


def sagemaker(kind: str, name: str) -> str:
    return f"arn:aws:sagemaker:eu-west-1:{ACCOUNT}:{kind}/{name}"
