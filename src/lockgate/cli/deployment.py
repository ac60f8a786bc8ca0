"""Commands of the deployment pipeline: models, approve, reject, promote, rollback, history.

The *home* environment is the global ``--env`` (default dev): training registers model versions
there, approvals are recorded there, and promotion copies packages from there. Each target
environment keeps its own release ledger in its own store.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from lockgate.cli.app import Context, app
from lockgate.cli.output import console, err, stage
from lockgate.errors import ConfigError, LockgateError, ObjectNotFound

if TYPE_CHECKING:
    from lockgate.config import Settings
    from lockgate.pipelines.deployment.promotion import Environment, Outcome
    from lockgate.pipelines.deployment.releases import Release
    from lockgate.ports.store import Store

models_app = typer.Typer(
    help="Registered model versions: list them, or `models show NAME VERSION`.",
    invoke_without_command=True,
)
app.add_typer(models_app, name="models")

ByOption = Annotated[
    str | None, typer.Option("--by", help="Who decides [env: LOCKGATE_USER] [default: login]")
]
NoteOption = Annotated[str, typer.Option("--note", help="Why, for the record.")]


# -- wiring ------------------------------------------------------------------------------------


def environment(
    settings: Settings, name: str, *, check: bool = True, endpoint: bool = True
) -> Environment:
    """Adapters of environment ``name``: store, registry, gates and (unless ``endpoint`` is
    False: another environment only read for its ledger) its endpoint."""
    from lockgate.cli.training import _training_modules, tracking
    from lockgate.local.endpoint import LocalEndpoint
    from lockgate.pipelines.deployment.promotion import Environment
    from lockgate.tracking.mlflow_tracker import MlflowRegistry
    from lockgate.wiring import open_store

    if check:
        _check_env(settings, name)
    _training_modules()
    env_settings = settings.for_env(name)
    store = open_store(env_settings.store_uri)
    uri, _artifacts = tracking(env_settings)
    config = settings.env_config(name).endpoint
    adapter: Any = None
    if not endpoint:
        pass
    elif config.kind == "sagemaker":
        adapter = _sagemaker_endpoint(settings, name, store)
    else:
        adapter = LocalEndpoint(
            env_settings.env_dir / "endpoint.json", settings.endpoint_name(name)
        )
    return Environment(
        name=name,
        store=store,
        registry=MlflowRegistry(uri),
        registry_uri=uri,
        work_dir=env_settings.env_dir / "deploy",
        gates=settings.gates(name),
        endpoint=adapter,
        endpoint_name=settings.endpoint_name(name),
        image_digests={"serving": config.image} if config.image else {},
    )


def _sagemaker_endpoint(settings: Settings, name: str, store: Store) -> Any:
    from lockgate.wiring import aws_module

    module = aws_module("endpoints", "SageMaker endpoints")
    return module.sagemaker_endpoint(
        store,
        settings.endpoint_name(name),
        settings.env_config(name).endpoint,
        f"envs.{name}.endpoint in {settings.config_path}",
    )


def _check_env(settings: Settings, name: str) -> None:
    if name not in settings.env_names:
        raise ConfigError(
            f"no environment '{name}' (environments: {', '.join(settings.env_names)}); "
            f"name them under [envs.*] in {settings.config_path}"
        )


def _all_environments(settings: Settings) -> dict[str, Environment]:
    """Every environment, for reading its ledger (no endpoint adapters: no AWS needed)."""
    return {name: environment(settings, name, endpoint=False) for name in settings.env_names}


def _home(ctx: typer.Context) -> tuple[Settings, Environment]:
    context: Context = ctx.obj
    settings = context.settings()
    return settings, environment(settings, settings.env, check=False)


# -- models ------------------------------------------------------------------------------------


def published(store: Store) -> list[tuple[str, int, dict[str, Any]]]:
    """Every model package in ``store``: (name, version, package.json), by name and version."""
    found = []
    for info in store.list("models/"):
        parts = info.key.split("/")
        if len(parts) == 4 and parts[3] == "package.json" and parts[2].isdigit():
            try:
                document = json.loads(store.get(info.key))
            except (ValueError, ObjectNotFound):
                continue
            found.append((parts[1], int(parts[2]), document))
    return sorted(found, key=lambda item: (item[0], item[1]))


@models_app.callback()
def models_command(ctx: typer.Context) -> None:
    """Registered versions: approvals, where each serves, test metric, data version."""
    if ctx.invoked_subcommand is not None:
        return
    from lockgate.pipelines.deployment.approvals import decisions
    from lockgate.pipelines.deployment.releases import read_history
    from lockgate.pipelines.training.package import package_sha256_of

    settings, home = _home(ctx)
    packages = published(home.store)
    if not packages:
        err.print(f"no model versions in {home.store.uri}; train one: lockgate train")
        return
    envs = _all_environments(settings)
    histories = {name: read_history(env.ledger, name) for name, env in envs.items()}
    table = Table(title=f"model versions registered in {home.name}")
    for column in ("model", "version", "family", "test metric", "data version", "decisions"):
        table.add_column(column, justify="right" if column == "version" else "left")
    for name in envs:
        table.add_column(name)
    for model, version, info in packages:
        digest = package_sha256_of(info)
        metric = str(info.get("extra", {}).get("metric") or "")
        value = info.get("metrics", {}).get(metric)
        found = decisions(home.ledger, model, version)
        verdicts = ", ".join(
            f"{d.verdict}{'(' + d.env + ')' if d.env else ''} by {d.by}" for d in found
        )
        row = [
            model,
            str(version),
            str(info.get("family", "")),
            f"{metric}={value:.4f}" if isinstance(value, float) else "-",
            str(info.get("data_version", ""))[:12],
            verdicts or "pending approval",
        ]
        for env_name in envs:
            row.append(_where(histories[env_name].releases(), digest))
        table.add_row(*(escape(cell) for cell in row))
    console.print(table)


def _where(releases: list[Release], digest: str) -> str:
    mine = [release for release in releases if release.package_sha256 == digest]
    served = [release for release in releases if release.failed is None]
    if served and served[-1].package_sha256 == digest:
        return f"serving (#{served[-1].seq})"
    if any(release.failed is None for release in mine):
        return "earlier"
    if mine:
        return "failed"
    return ""


@models_app.command("show")
def models_show(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(help="Model name.")],
    version: Annotated[int, typer.Argument(help="Version number.")],
) -> None:
    """A model card: metrics against each environment's champion, lineage, approvals."""
    from lockgate.pipelines.deployment.approvals import decisions
    from lockgate.pipelines.deployment.releases import read_history
    from lockgate.pipelines.training.package import package_prefix, package_sha256_of

    settings, home = _home(ctx)
    info = _package_json(home.store, package_prefix(model, version), model, version)
    digest = package_sha256_of(info)
    extra = info.get("extra", {})
    console.print(f"[bold]{escape(model)} version {version}[/bold]  ({info.get('family')})")
    lineage = {
        "dataset": info.get("dataset"),
        "data version": info.get("data_version"),
        "transformer sha256": info.get("transformer_sha256"),
        "package sha256": digest,
        "study / trial": f"{extra.get('study', '-')} / {extra.get('trial', '-')}",
        "trained by": extra.get("trained_by", "-"),
        "git commit": extra.get("git_commit") or "-",
        "created": info.get("created_at"),
        "package": home.store.uri.rstrip("/") + "/" + package_prefix(model, version),
    }
    for key, value in lineage.items():
        console.print(f"  {key:<19} {escape(str(value))}")
    envs = _all_environments(settings)
    champions = {}
    for name, env in envs.items():
        current = read_history(env.ledger, name).current()
        if current is not None:
            champions[name] = current
    table = Table(title="test metrics (each on its own data version's test split)")
    table.add_column("metric")
    table.add_column(f"v{version}", justify="right")
    for name, current in champions.items():
        table.add_column(f"{name}: v{current.version}", justify="right")
    for metric, value in sorted(info.get("metrics", {}).items()):
        row = [metric, f"{value:.4f}"]
        for current in champions.values():
            other = current.record.get("metrics", {}).get(metric)
            row.append(f"{other:.4f}" if isinstance(other, float) else "-")
        table.add_row(*row)
    console.print(table)
    found = decisions(home.ledger, model, version)
    console.print("decisions:" if found else "decisions: none yet (pending approval)")
    for decision in found:
        scope = decision.env or "every environment"
        note = f' "{decision.note}"' if decision.note else ""
        console.print(
            f"  {decision.at:%Y-%m-%d %H:%M} {decision.verdict} for {scope} by "
            f"{escape(decision.by)}{escape(note)}"
        )
    mine = [
        (name, release)
        for name, env in envs.items()
        for release in read_history(env.ledger, name).releases()
        if release.package_sha256 == digest
    ]
    console.print("releases:" if mine else "releases: none yet")
    for name, release in mine:
        state = "failed" if release.failed else release.action
        console.print(
            f"  {release.released_at:%Y-%m-%d %H:%M} {state} to {name} "
            f"(release #{release.seq}) by {escape(release.by)}"
        )


def _package_json(store: Store, prefix: str, model: str, version: int) -> dict[str, Any]:
    try:
        document: dict[str, Any] = json.loads(store.get(prefix + "package.json"))
    except ObjectNotFound:
        raise LockgateError(
            f"no {model} version {version} in {store.uri}; see `lockgate models`"
        ) from None
    return document


# -- approve / reject --------------------------------------------------------------------------


@app.command()
def approve(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(help="Model name.")],
    version: Annotated[int, typer.Argument(help="Version number.")],
    env: Annotated[str, typer.Option("--env", help="The environment it is approved for.")],
    by: ByOption = None,
    note: NoteOption = "",
) -> None:
    """Approve a model version for one environment (recorded in the home ledger)."""
    _decide(ctx, model, version, "approved", env, by, note)


@app.command()
def reject(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(help="Model name.")],
    version: Annotated[int, typer.Argument(help="Version number.")],
    env: Annotated[
        str | None, typer.Option("--env", help="Only for this environment [default: every one]")
    ] = None,
    by: ByOption = None,
    note: NoteOption = "",
) -> None:
    """Reject a model version (for every environment unless --env): it cannot be promoted."""
    _decide(ctx, model, version, "rejected", env, by, note)


def _decide(
    ctx: typer.Context,
    model: str,
    version: int,
    verdict: str,
    env: str | None,
    by: str | None,
    note: str,
) -> None:
    from lockgate.config import current_user
    from lockgate.pipelines.deployment.approvals import record_decision
    from lockgate.pipelines.training.package import package_prefix, package_sha256_of
    from lockgate.ports.tracking import TrackingError

    settings, home = _home(ctx)
    if env is not None:
        _check_env(settings, env)
    info = _package_json(home.store, package_prefix(model, version), model, version)
    decision = record_decision(
        home.ledger,
        model,
        version,
        verdict,  # type: ignore[arg-type]
        env=env,
        by=by or current_user(),
        note=note,
        package_sha256=package_sha256_of(info),
    )
    try:
        home.registry.set_tag(model, version, "status", verdict)
        home.registry.set_tag(model, version, f"lockgate.{verdict}.{env or 'all'}", decision.by)
    except TrackingError as exc:
        err.print(f"[yellow]warning:[/yellow] the registry tag was not set: {escape(str(exc))}")
    scope = f"for {env}" if env else "for every environment"
    console.print(f"{model} version {version} {verdict} {scope} by {escape(decision.by)}")


# -- promote / rollback / history --------------------------------------------------------------


@app.command()
def promote(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(help="Model name.")],
    version: Annotated[int, typer.Argument(help="Version number.")],
    to: Annotated[str, typer.Option("--to", help="The environment to release it into.")],
    by: ByOption = None,
    note: NoteOption = "",
) -> None:
    """Check the gates, copy the package, record the release, deploy it."""
    from lockgate.config import current_user
    from lockgate.pipelines.deployment.promotion import promote as run_promotion

    settings, home = _home(ctx)
    _check_env(settings, to)
    envs = _all_environments(settings)
    envs[to] = environment(settings, to)
    outcome = run_promotion(
        envs.get(settings.env, home),
        envs[to],
        model,
        version,
        by=by or current_user(),
        note=note,
        environments=envs,
        say=stage,
    )
    print_outcome(to, outcome)


@app.command()
def rollback(
    ctx: typer.Context,
    env: Annotated[str, typer.Option("--env", help="The environment to roll back.")],
    by: ByOption = None,
    note: NoteOption = "",
) -> None:
    """Release again the package that served before the current one."""
    from lockgate.config import current_user
    from lockgate.pipelines.deployment.promotion import rollback as run_rollback

    settings, home = _home(ctx)
    outcome = run_rollback(
        environment(settings, env), by=by or current_user(), note=note, home=home, say=stage
    )
    print_outcome(env, outcome)


def print_outcome(env: str, outcome: Outcome, *, hint: bool = True) -> None:
    release = outcome.release
    if release is None:
        current = outcome.current
        assert current is not None  # noqa: S101 - promote returns one or the other
        console.print(
            f"{current.model} version {current.version} already serves in {env} "
            f"(release #{current.seq}); nothing to do"
        )
        return
    verb = "rolled back" if release.action == "rollback" else "released"
    console.print(
        f"[green]{verb}[/green] {release.model} version {release.version} to {env} "
        f"as release #{release.seq}"
    )
    deployment = outcome.deployment
    if deployment is None or deployment.state == "not_running":
        if hint:
            console.print(f"endpoint: not running; serve it with `lockgate serve --env {env}`")
    else:
        console.print(f"endpoint: {deployment.state} at {deployment.endpoint}")


@app.command()
def history(
    ctx: typer.Context,
    env: Annotated[str, typer.Option("--env", help="The environment.")],
    at: Annotated[
        str | None,
        typer.Option("--at", help="What served at this time (ISO 8601, UTC if no offset)."),
    ] = None,
) -> None:
    """Every release of an environment: what served, when, approved and released by whom."""
    context: Context = ctx.obj
    settings = context.settings()
    print_history(settings, env, at)


def print_history(settings: Settings, env: str, at: str | None = None) -> None:
    """The release table of ``env`` (or, with ``at``, the release that served then)."""
    from lockgate.pipelines.deployment.releases import read_history
    from lockgate.pipelines.ledger import Ledger
    from lockgate.wiring import open_store

    _check_env(settings, env)
    store = open_store(settings.for_env(env).store_uri)
    found = read_history(Ledger(store), env)
    if at is not None:
        when = _parse_time(at)
        release = found.at(when)
        if release is None:
            console.print(f"nothing served in {env} at {when.isoformat(timespec='seconds')}")
            return
        _print_release(release, f"served in {env} at {when.isoformat(timespec='seconds')}")
        return
    releases = found.releases()
    if not releases:
        console.print(f"no releases in {env} yet")
        return
    current = found.current()
    table = Table(title=f"releases of {env} ({store.uri})")
    for column in ("#", "time (UTC)", "action", "model", "package", "approved by", "by", "state"):
        table.add_column(column)
    for release in releases:
        approvals = ", ".join(
            item["by"]
            for item in release.record.get("approvals", [])
            if item["verdict"] == "approved"
        )
        state = (
            "failed"
            if release.failed
            else ("serving" if current is not None and release.seq == current.seq else "replaced")
        )
        table.add_row(
            str(release.seq),
            f"{release.released_at:%Y-%m-%d %H:%M:%S}",
            release.action,
            escape(f"{release.model} v{release.version}"),
            release.package_sha256[:12],
            escape(approvals or "-"),
            escape(release.by),
            state,
        )
    console.print(table)
    for release in releases:
        if release.failed:
            console.print(f"release #{release.seq} failed: {escape(release.failed)}")


def _print_release(release: Release, title: str) -> None:
    record = release.record
    console.print(f"[bold]{escape(release.model)} version {release.version}[/bold] {title}")
    rows = {
        "release": f"#{release.seq} ({release.action}) at {release.released_at:%Y-%m-%d %H:%M:%S}",
        "released by": record.get("by"),
        "approvals": "; ".join(
            f"{item['verdict']} by {item['by']} at {item['at']}" for item in record["approvals"]
        )
        or "none needed",
        "package sha256": release.package_sha256,
        "data version": record.get("data_version"),
        "transformer sha256": record.get("transformer_sha256"),
        "git commit": record.get("git_commit") or "-",
        "metrics": ", ".join(f"{k}={v:.4f}" for k, v in sorted(record.get("metrics", {}).items())),
    }
    for key, value in rows.items():
        console.print(f"  {key:<19} {escape(str(value))}")


def _parse_time(text: str) -> datetime:
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"--at '{text}' is not an ISO 8601 time, e.g. 2026-11-01T12:00") from None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)
