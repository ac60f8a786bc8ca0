"""Reading lockgate's CloudFormation templates in tests: short-form tags, policies, values."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

TEMPLATES = Path(__file__).parents[2] / "src" / "lockgate" / "aws" / "templates"
ALL_TEMPLATES = ["environment.yaml", "images.yaml", "github-oidc.yaml"]
DIGEST = "4f" * 32
REPOSITORY = "123456789012.dkr.ecr.us-east-1.amazonaws.com/lockgate-dev-data-prep"
STORE = "lockgate-${EnvName}-${AWS::AccountId}-${AWS::Region}"

# -- reading the templates ---------------------------------------------------------------------


class CfnLoader(yaml.SafeLoader):
    """PyYAML's SafeLoader plus CloudFormation's short-form tags (!Ref, !GetAtt, !Sub, ...)."""


def _short_form(loader: CfnLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    if suffix in ("Ref", "Condition"):
        return {suffix: value}
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{suffix}": value}


CfnLoader.add_multi_constructor("!", _short_form)


def load(name: str) -> dict[str, Any]:
    with (TEMPLATES / name).open() as text:
        template: dict[str, Any] = yaml.load(text, CfnLoader)  # noqa: S506 - a SafeLoader
    return template


def of_type(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {k: r for k, r in template["Resources"].items() if r["Type"] == kind}


def statements(resources: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """Every policy statement of some resources: (logical id, policy property, statement)."""
    found = []

    def walk(node: Any, owner: str, kind: str) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("Statement"), list):
                found.extend((owner, kind, s) for s in node["Statement"])
            for key, value in node.items():
                walk(value, owner, key if key.endswith(("Policy", "Document", "Text")) else kind)
        elif isinstance(node, list):
            for value in node:
                walk(value, owner, kind)

    for logical_id, resource in resources.items():
        walk(resource.get("Properties", {}), logical_id, "")
    return found


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def sub(text: str) -> dict[str, str]:
    return {"Fn::Sub": text}


def evaluate(node: Any, parameters: dict[str, str]) -> Any:
    """Ref, Fn::Split and Fn::Select as CloudFormation evaluates them."""
    if isinstance(node, dict) and "Ref" in node:
        return parameters[node["Ref"]]
    if isinstance(node, dict) and "Fn::Split" in node:
        separator, value = node["Fn::Split"]
        return evaluate(value, parameters).split(separator)
    if isinstance(node, dict) and "Fn::Select" in node:
        index, values = node["Fn::Select"]
        return evaluate(values, parameters)[int(index)]
    return node


# -- the store and its upload trigger ----------------------------------------------------------
