"""lockgate.toml as ``lockgate init`` writes it."""

from __future__ import annotations

import json


def render_config(dataset: str, target: str, task: str, columns: dict[str, str]) -> str:
    """A commented lockgate.toml for one dataset."""
    width = max((len(json.dumps(name)) for name in columns), default=0)
    lines = [
        "# lockgate project configuration. Precedence: CLI flag, LOCKGATE_* variable, this file.",
        f'default_dataset = "{dataset}"',
        "",
        f"[datasets.{json.dumps(dataset)}]",
        f"target = {json.dumps(target)}",
        f'task = "{task}"  # classification | regression',
        "",
        f"[datasets.{json.dumps(dataset)}.columns]",
        "# kinds: numeric, categorical, text, datetime, id (id columns are never features)",
    ]
    for name, kind in columns.items():
        lines.append(f'{json.dumps(name):<{width}} = "{kind}"')
    lines += [
        "",
        f"[datasets.{json.dumps(dataset)}.prep]",
        "seed = 42",
        "validation_fraction = 0.15",
        "test_fraction = 0.15",
        "max_invalid_fraction = 0.01  # unparseable values a column may have before the file is"
        " quarantined",
        "",
        "# [envs.dev]",
        '# store = "s3://my-bucket/lockgate"  # default: file://.lockgate/<env>/store',
        "",
    ]
    return "\n".join(lines)
