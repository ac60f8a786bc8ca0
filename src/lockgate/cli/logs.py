"""``lockgate logs``: search lockgate's JSON log records and count them by pipeline and level.

The selection itself (parsing the options, filtering, counting) is :mod:`lockgate.logquery`;
this module picks the folders, and prints.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from lockgate.cli.app import Context, app
from lockgate.cli.output import console
from lockgate.errors import ConfigError

if TYPE_CHECKING:
    from lockgate.config import Settings

DEFAULT_LIMIT = 200


@app.command("logs")
def logs_command(
    ctx: typer.Context,
    pipeline: Annotated[
        str | None,
        typer.Option(help="Only this pipeline: data, training, deployment, monitoring, runtime."),
    ] = None,
    level: Annotated[
        str | None,
        typer.Option(help="Lowest level shown: debug, info, warning, error, critical."),
    ] = None,
    since: Annotated[
        str,
        typer.Option(help="A duration back from now (90s, 30m, 2h, 7d) or a UTC date/time."),
    ] = "24h",
    grep: Annotated[
        str | None,
        typer.Option(help="Text in the message, the event or the fields (any case)."),
    ] = None,
    run: Annotated[str | None, typer.Option("--run", help="Only this run id.")] = None,
    env: Annotated[
        str | None, typer.Option("--env", help="Only records of this environment.")
    ] = None,
    limit: Annotated[
        int, typer.Option(help="Show the last N matching records; 0 shows all.")
    ] = DEFAULT_LIMIT,
    as_json: Annotated[
        bool, typer.Option("--json", help="The records as JSON lines, for jq; no table.")
    ] = False,
) -> None:
    """lockgate's log records of every environment, merged by time, and a count of them by
    pipeline and level."""
    from lockgate.cli.serving import named_env
    from lockgate.logquery import LogQuery, select

    context: Context = ctx.obj
    settings = context.settings()
    if env is not None:
        named_env(ctx, env)  # an unknown environment is refused in one line
    if limit < 0:
        raise ConfigError(f"--limit {limit} must be 0 (show all) or more")
    query = LogQuery.parse(
        now=datetime.now(UTC),
        since=since,
        pipeline=pipeline,
        level=level,
        grep=grep,
        run_id=run,
        env=env,
    )
    folders = log_folders(settings)
    records = select(folders, query)
    shown = records[-limit:] if limit else records
    if as_json:
        for record in shown:
            console.out(json.dumps(record, ensure_ascii=False, default=str), highlight=False)
        return
    where = ", ".join(_display(folder, settings.root) for folder in folders) or "no log folder"
    if not records:
        console.print(f"no log records match since {_moment(query.since)} in {escape(where)}")
        return
    for record in shown:
        console.out(_line(record), highlight=False)
    if len(shown) < len(records):
        console.print(
            f"(the last {len(shown)} of {len(records)} matching records; --limit 0 shows all)"
        )
    console.print()
    console.print(counts_table(records))
    console.print(
        f"{len(records)} record(s) from {_moment(_time(records[0]))} to "
        f"{_moment(_time(records[-1]))} in {escape(where)}"
    )


def log_folders(settings: Settings) -> list[Path]:
    """The log folder of every configured environment (and the current one), each once.

    All of them are read even for ``--env``: a command acting on one environment (a
    promotion to prod run from dev) writes its records, marked with that environment, into
    the folder of the environment it ran in.
    """
    from lockgate.logs import log_folder

    names = [*settings.env_names, settings.env]
    folders: list[Path] = []
    seen: set[Path] = set()
    for name in names:
        folder = log_folder(settings.for_env(name).env_dir)
        key = folder.resolve()
        if key not in seen:
            seen.add(key)
            folders.append(folder)
    return [folder for folder in folders if folder.is_dir()]


def counts_table(records: list[dict[str, Any]]) -> Table:
    """Records per pipeline (rows) and level (columns), with a total row and column."""
    from lockgate.logquery import COUNTED_LEVELS, count_by, totals

    counts = count_by(records)
    table = Table("pipeline", *COUNTED_LEVELS, "total", box=None)
    for column in table.columns[1:]:
        column.justify = "right"
    for name, row in counts.items():
        table.add_row(escape(name), *(str(row[key]) for key in (*COUNTED_LEVELS, "total")))
    summed = totals(counts)
    table.add_row("total", *(str(summed[key]) for key in (*COUNTED_LEVELS, "total")))
    return table


def _line(record: dict[str, Any]) -> str:
    from lockgate.logs import human_line

    return human_line(record, show_env=True)


def _time(record: dict[str, Any]) -> datetime:
    from lockgate.logquery import record_time

    moment = record_time(record)
    if moment is None:  # select() keeps only records with a time
        raise ValueError(f"record without a time: {record}")
    return moment


def _moment(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _display(folder: Path, root: Path) -> str:
    try:
        return str(folder.resolve().relative_to(root.resolve()))
    except ValueError:
        return str(folder)
