"""README.md tells the truth about configuration: its reference is checked against the models.

The keys are found by walking the pydantic models from ``FileConfig`` (never from a list kept
here), so a key added to ``lockgate/config.py`` without a README row, or a row left behind
for a key that was removed, fails these tests.

The reference is the part of README.md between ``<!-- config-reference:start -->`` and
``<!-- config-reference:end -->``. Its rows are markdown table lines of four cells: key,
type and allowed values, default, what it does. The rules a row follows:

* **Key**, the first cell, in backticks: ``[table] key`` with the dotted TOML table
  (``[monitor.drift] alpha``), or ``key`` alone at the top level. Where the user picks a name
  (``datasets.<name>``, ``envs.<env>``) the README writes a placeholder in angle brackets; any
  placeholder text matches. A key whose value is a table of names the user picks with plain
  values (``columns``, ``min_metrics``, ``families``) is one row of its own.
* **Default**, the third cell: the default in backticks, anywhere in the cell (so the cell can
  go on to explain):

  - a bool as TOML writes it: ``true``, ``false``;
  - an int in decimal, with or without TOML's ``_`` separators: ``100000``, ``100_000``;
  - a float as Python's ``repr`` writes it, and a whole number may drop its ``.0``: ``0.05``;
    ``30.0`` or ``30``;
  - a string as a TOML string, quotes included: ``"info"``;
  - an empty table: ``{}``.

  A key whose default is None (TOML has no null) has a cell that starts with the word
  ``unset``, followed by what happens then; a required key's cell starts with ``required``. A
  default of any other kind fails the test until a rule for it is written here.
* **Allowed values**, the second cell: every value of a ``Literal`` in the key's type appears
  there, quoted (``"tpe"``, ``"random"``), and every bound of a number (``ge``, ``gt``, ``le``,
  ``lt``) appears there as a number (``0 ≤ x < 1``, ``integer ≥ 1``).

Every ``toml`` example in README.md must also be a valid lockgate.toml on its own.

The environment variables are the rows between ``<!-- env-vars:start -->`` and
``<!-- env-vars:end -->``, a backticked ``LOCKGATE_*`` name first; they must be exactly the
variables the code reads.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Iterator
from pathlib import Path
from types import UnionType
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

from lockgate.config import FileConfig

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
SOURCE = ROOT / "src" / "lockgate"

REFERENCE = ("<!-- config-reference:start -->", "<!-- config-reference:end -->")
VARIABLES = ("<!-- env-vars:start -->", "<!-- env-vars:end -->")
PLACEHOLDER = re.compile(r"<[^<>`]*>")

Row = tuple[str, list[str]]
"""A reference row: its key (placeholders normalised to ``<>``) and its cells."""


# --- the models ----------------------------------------------------------------------------


def _table_of(annotation: Any) -> tuple[type[BaseModel] | None, bool]:
    """The model whose fields a value of this type holds, if any, and whether it is one table
    per name the user picks (``dict[str, Model]``) rather than a single table."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation, False
    origin = get_origin(annotation)
    args = [arg for arg in get_args(annotation) if arg is not type(None)]
    if origin in (Union, UnionType) and len(args) == 1:  # Model | None: still a table
        return _table_of(args[0])
    if origin is dict and len(args) == 2:
        model, named = _table_of(args[1])
        if model is not None and not named:
            return model, True
    return None, False


def config_keys(model: type[BaseModel] = FileConfig, table: str = "") -> dict[str, FieldInfo]:
    """Every key lockgate.toml accepts, as the reference writes it, and its field."""
    keys: dict[str, FieldInfo] = {}
    for name, info in model.model_fields.items():
        toml_name = info.alias or name
        nested, named = _table_of(info.annotation)
        if nested is None:
            keys[f"[{table}] {toml_name}" if table else toml_name] = info
            continue
        path = f"{table}.{toml_name}" if table else toml_name
        keys |= config_keys(nested, path + ".<>" if named else path)
    return keys


def default_spellings(value: Any) -> list[str] | None:
    """How a plain default may be written in the default cell; None: not a plain value."""
    if isinstance(value, bool):
        return ["true" if value else "false"]
    if isinstance(value, int):
        return [str(value), f"{value:_}"]
    if isinstance(value, float):
        return [repr(value), str(int(value))] if value.is_integer() else [repr(value)]
    if isinstance(value, str):
        return [json.dumps(value)]
    if isinstance(value, dict) and not value:
        return ["{}"]
    return None


def literal_values(annotation: Any) -> list[Any]:
    """Every value a ``Literal`` anywhere in ``annotation`` allows."""
    if get_origin(annotation) is Literal:
        return list(get_args(annotation))
    return [value for arg in get_args(annotation) for value in literal_values(arg)]


# --- the README ----------------------------------------------------------------------------


def _section(markers: tuple[str, str]) -> str:
    text = README.read_text(encoding="utf-8")
    start, end = markers
    assert text.count(start) == 1, f"README.md needs exactly one {start}"
    assert text.count(end) == 1, f"README.md needs exactly one {end}"
    section = text.split(start, 1)[1].split(end, 1)
    assert len(section) == 2, f"{end} must come after {start} in README.md"
    return section[0]


def _table_rows(section: str) -> Iterator[tuple[str, list[str]]]:
    """The rows whose first cell is one backticked name: the name and every cell."""
    for line in section.splitlines():
        line = line.strip()
        if not line.startswith("|"):
            continue
        cells = [cell.strip() for cell in re.split(r"(?<!\\)\|", line.strip("|"))]
        named = re.fullmatch(r"`([^`]+)`", cells[0])
        if named:
            yield named.group(1), cells


def normalise(key: str) -> str:
    return PLACEHOLDER.sub("<>", " ".join(key.split()))


def reference_rows() -> list[Row]:
    return [(normalise(key), cells) for key, cells in _table_rows(_section(REFERENCE))]


def reference() -> dict[str, list[str]]:
    return dict(reference_rows())


def _problems(problems: list[str]) -> str:
    return "README.md's configuration reference:\n  " + "\n  ".join(problems)


# --- the tests -----------------------------------------------------------------------------


def test_the_walk_reaches_every_kind_of_table() -> None:
    # Guards the walk itself: top-level keys, tables, optional tables, tables per name.
    keys = config_keys()
    for key in (
        "default_dataset",
        "[runtime] workers",
        "[datasets.<>] columns",
        "[datasets.<>.prep] seed",
        "[envs.<>.endpoint] port",
        "[envs.<>.gates] min_served_requests",
        "[monitor.drift] alpha",
        "[logs] retention_days",
        "[train] families",
    ):
        assert key in keys
    assert not any(key.endswith((" prep", " gates", " endpoint", " drift")) for key in keys)


def test_every_key_has_a_row() -> None:
    rows = reference()
    missing = [key for key in config_keys() if key not in rows]
    assert not missing, _problems([f"no row for `{key}`" for key in missing])


def test_no_row_for_a_key_the_models_do_not_have() -> None:
    keys = config_keys()
    rows = reference_rows()
    problems = [f"`{key}` is not a key of lockgate.toml" for key, _ in rows if key not in keys]
    seen: set[str] = set()
    for key, _ in rows:
        if key in seen:
            problems.append(f"`{key}` has more than one row")
        seen.add(key)
    assert not problems, _problems(problems)


def test_rows_have_four_cells() -> None:
    short = [key for key, cells in reference_rows() if len(cells) != 4]
    assert not short, _problems([f"`{key}`: not key | type | default | what" for key in short])


def test_rows_state_the_default() -> None:
    rows = reference()
    problems = []
    for key, info in config_keys().items():
        if key not in rows or len(rows[key]) != 4:
            continue  # reported by the tests above
        cell = rows[key][2]
        if info.is_required():
            if not cell.startswith("required"):
                problems.append(f"`{key}` is required: its default cell must start 'required'")
            continue
        value = info.get_default(call_default_factory=True)
        if value is None:
            if not cell.startswith("unset"):
                problems.append(f"`{key}` defaults to None: its default cell must start 'unset'")
            continue
        spellings = default_spellings(value)
        if spellings is None:
            problems.append(f"`{key}`: no rule for a default like {value!r}; add one to this test")
        elif not any(f"`{spelling}`" in cell for spelling in spellings):
            wanted = " or ".join(f"`{spelling}`" for spelling in dict.fromkeys(spellings))
            problems.append(f"`{key}` defaults to {wanted}; the row says: {cell}")
    assert not problems, _problems(problems)


def test_rows_list_the_allowed_values() -> None:
    rows = reference()
    problems = [
        f"`{key}` allows {json.dumps(value)}; its type cell does not say so"
        for key, info in config_keys().items()
        if key in rows and len(rows[key]) == 4
        for value in literal_values(info.annotation)
        if json.dumps(value) not in rows[key][1]
    ]
    assert not problems, _problems(problems)


def bounds(info: FieldInfo) -> list[float]:
    """The numbers a field's value is bounded by (``ge``, ``gt``, ``le``, ``lt``)."""
    return [
        float(getattr(item, name))
        for item in info.metadata
        for name in ("ge", "gt", "le", "lt")
        if getattr(item, name, None) is not None
    ]


def test_rows_state_the_bounds() -> None:
    rows = reference()
    problems = []
    for key, info in config_keys().items():
        if key not in rows or len(rows[key]) != 4:
            continue
        cell = rows[key][1]
        stated = {float(number) for number in re.findall(r"\d+(?:\.\d+)?", cell.replace("_", ""))}
        problems += [
            f"`{key}` is bounded by {bound:g}; its type cell says: {cell}"
            for bound in bounds(info)
            if bound not in stated
        ]
    assert not problems, _problems(problems)


def test_toml_examples_are_valid_configuration() -> None:
    text = README.read_text(encoding="utf-8")
    blocks = re.findall(r"^```toml\n(.*?)^```", text, flags=re.DOTALL | re.MULTILINE)
    assert blocks, "README.md has no ```toml examples"
    problems = []
    for number, block in enumerate(blocks, start=1):
        try:
            FileConfig.model_validate(tomllib.loads(block))
        except (tomllib.TOMLDecodeError, ValidationError) as exc:
            first_line = block.strip().splitlines()[0]
            problems.append(f"toml example {number} ({first_line}): {exc}")
    assert not problems, "\n".join(problems)


def _variables_read() -> set[str]:
    """``LOCKGATE_*`` names the code reads: a whole string literal, or ``ENV_PREFIX + "NAME"``."""
    found: set[str] = set()
    for path in SOURCE.rglob("*.py"):
        code = path.read_text(encoding="utf-8")
        found |= set(re.findall(r"""["'](LOCKGATE_[A-Z0-9][A-Z0-9_]*)["']""", code))
        found |= {
            "LOCKGATE_" + name
            for name in re.findall(r"""ENV_PREFIX\s*\+\s*["']([A-Z0-9_]+)["']""", code)
        }
    return found


def test_environment_variables_are_the_ones_the_code_reads() -> None:
    read = _variables_read()
    assert {"LOCKGATE_CONFIG", "LOCKGATE_ENV", "LOCKGATE_STORE"} <= read  # the scan works
    documented = [name for name, _ in _table_rows(_section(VARIABLES))]
    problems = [
        f"`{name}` is read by the code but has no row" for name in sorted(read - set(documented))
    ]
    problems += [
        f"`{name}` has a row but the code never reads it" for name in documented if name not in read
    ]
    assert not problems, "README.md's environment variables:\n  " + "\n  ".join(problems)
