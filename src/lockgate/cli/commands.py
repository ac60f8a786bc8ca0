"""Commands for the store, the data pipeline and the local runtime."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from lockgate.cli.app import Context, app, data_app
from lockgate.cli.output import console, err, human_size, stage, transfer_progress
from lockgate.errors import ConfigError


@app.command()
def init(
    ctx: typer.Context,
    dataset: Annotated[str, typer.Option(help="Dataset name (its prefix: raw/NAME/).")],
    source: Annotated[
        Path, typer.Option("--from", help="A sample file (csv, parquet, jsonl) to infer from.")
    ],
    target: Annotated[str, typer.Option(help="The column to predict.")],
    force: Annotated[bool, typer.Option(help="Overwrite an existing lockgate.toml.")] = False,
) -> None:
    """Write lockgate.toml for a dataset, with its schema inferred from a sample file."""
    from lockgate.cli.project import render_config
    from lockgate.config import config_path
    from lockgate.pipelines.data.inference import infer_schema

    context: Context = ctx.obj
    path = config_path(context.config)
    if path.exists() and not force:
        raise ConfigError(f"{path} exists; pass --force to overwrite it")
    if not source.is_file():
        raise ConfigError(f"{source} is not a file")
    task, columns = infer_schema(source, target)
    path.write_text(render_config(dataset, target, task, columns), encoding="utf-8")
    console.print(f"wrote {path}: dataset '{dataset}', {task} on '{target}'")
    for name, kind in columns.items():
        console.print(f"  {name:<28} {kind}")
    console.print("check the column kinds, then: lockgate put FILE && lockgate data prep")


@app.command()
def put(
    ctx: typer.Context,
    files: Annotated[list[Path], typer.Argument(help="Files to upload.")],
    dataset: Annotated[str | None, typer.Option(help="Upload to raw/DATASET/.")] = None,
    to: Annotated[
        str | None, typer.Option(help="Key prefix to upload under instead of raw/DATASET/.")
    ] = None,
) -> None:
    """Upload files to the store (raw/DATASET/ by default), which triggers the data pipeline."""
    context: Context = ctx.obj
    settings = context.settings(dataset)
    for path in files:
        if not path.is_file():
            raise ConfigError(f"{path} is not a file")
    if to is None:
        name, _ = settings.dataset()
        prefix = f"raw/{name}/"
    else:
        prefix = to if to.endswith("/") or not to else to + "/"
    store = context.open_store(settings)
    for path in files:
        key = prefix + path.name
        size = path.stat().st_size
        with transfer_progress(f"put {path.name}", size) as advance:
            info = store.put_file(key, path, progress=advance)
        console.print(f"put {path} -> {key} ({human_size(info.size)}, etag {info.etag[:12]})")


@app.command("ls")
def list_objects(
    ctx: typer.Context,
    prefix: Annotated[str, typer.Argument(help="Key prefix, e.g. raw/ or processed/churn/.")] = "",
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """List objects in the store under a prefix."""
    from rich.table import Table

    context: Context = ctx.obj
    store = context.open_store(context.settings())
    objects = list(store.list(prefix))
    if as_json:
        for info in objects:
            record = {"key": info.key, "size": info.size, "etag": info.etag}
            record["last_modified"] = info.last_modified.isoformat()
            console.print_json(json.dumps(record), indent=None)
        return
    table = Table("key", "size", "modified (UTC)", "etag", box=None)
    for info in objects:
        table.add_row(
            info.key,
            human_size(info.size),
            info.last_modified.strftime("%Y-%m-%d %H:%M:%S"),
            info.etag[:12],
        )
    console.print(table)
    total = sum(info.size for info in objects)
    console.print(f"{len(objects)} object(s), {human_size(total)} in {store.uri}")


@app.command()
def get(
    ctx: typer.Context,
    key: Annotated[str, typer.Argument(help="Object key.")],
    dest: Annotated[Path, typer.Argument(help="File or folder to write to.")],
) -> None:
    """Download an object from the store."""
    context: Context = ctx.obj
    store = context.open_store(context.settings())
    target = dest / key.rsplit("/", 1)[-1] if dest.is_dir() else dest
    size = store.head(key).size
    with transfer_progress(f"get {key}", size) as advance:
        store.get_file(key, target, progress=advance)
    console.print(f"got {key} -> {target} ({human_size(size)})")


@data_app.command("prep")
def data_prep(
    ctx: typer.Context,
    dataset: Annotated[str | None, typer.Option(help="Dataset to prepare.")] = None,
    all_datasets: Annotated[bool, typer.Option("--all", help="Every configured dataset.")] = False,
) -> None:
    """Run the data pipeline now on the dataset's current raw files."""
    from lockgate.pipelines.data import prepare
    from lockgate.pipelines.runs import Trigger

    context: Context = ctx.obj
    settings = context.settings(dataset)
    names = sorted(settings.datasets) if all_datasets else [settings.dataset()[0]]
    if not names:
        settings.dataset()  # raises the "no dataset configured" error
    store = context.open_store(settings)
    trigger = Trigger.command()
    failed = False
    for name in names:
        result = prepare(store, name, settings.datasets[name], stage, trigger=trigger)
        print_prep(result)
        failed = failed or result.status in ("all_quarantined", "no_raw_files")
    if failed:
        raise typer.Exit(1)


def print_prep(result: Any) -> None:
    """One line per run, then one per quarantined file."""
    style = {"committed": "green", "exists": "cyan"}.get(result.status, "red")
    version = result.version or "-"
    console.print(
        f"[{style}]{result.status}[/{style}] {result.dataset} {version}: {escape(result.message)}"
    )
    for item in result.quarantined:
        console.print(
            f"  [yellow]quarantined[/yellow] {escape(item.key)} "
            f"\\[{item.rule}] {escape(item.message)}"
        )
        console.print(f"    copy and error.json in {item.location}")


@data_app.command("versions")
def data_versions(
    ctx: typer.Context,
    dataset: Annotated[str | None, typer.Option(help="Dataset to list.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="The manifests as JSON lines.")] = False,
) -> None:
    """Committed dataset versions: id, rows, source files, time."""
    from rich.table import Table

    from lockgate.pipelines.data.versions import list_versions

    context: Context = ctx.obj
    settings = context.settings(dataset)
    name, _ = settings.dataset()
    versions = list_versions(context.open_store(settings), name)
    if as_json:
        for manifest in versions:
            console.print_json(manifest.model_dump_json(), indent=None)
        return
    if not versions:
        err.print(f"no committed version of '{name}' yet; run `lockgate data prep`")
        return
    table = Table(
        "version",
        "created (UTC)",
        "rows",
        "train/val/test",
        "features",
        "sources",
        "quarantined",
        box=None,
    )
    for manifest in versions:
        rows = manifest.rows
        sources = ", ".join(source.key.rsplit("/", 1)[-1] for source in manifest.sources)
        table.add_row(
            manifest.version,
            manifest.created_at[:19].replace("T", " "),
            str(rows["total"]),
            f"{rows['train']}/{rows['validation']}/{rows['test']}",
            str(manifest.n_features),
            sources if len(sources) < 60 else f"{len(manifest.sources)} files",
            str(len(manifest.quarantined)),
        )
    console.print(table)
