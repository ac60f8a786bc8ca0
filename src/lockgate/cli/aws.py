"""`lockgate aws`: deploy an environment's stacks, read its state, sync its Lambda image."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from lockgate.cli.app import app
from lockgate.cli.output import console, err, stage
from lockgate.cli.serving import EnvOption, named_env
from lockgate.errors import ConfigError

if TYPE_CHECKING:
    from lockgate.config import Settings

aws_app = typer.Typer(
    help="The environment on AWS: its stacks, its Lambda image, its state.",
    no_args_is_help=True,
)
app.add_typer(aws_app, name="aws")

ProfileOption = Annotated[
    str | None, typer.Option(help="AWS profile [default: [envs.<env>.aws] profile]")
]
RegionOption = Annotated[
    str | None, typer.Option(help="AWS region [default: [envs.<env>.aws] region]")
]


def _aws(module: str) -> Any:
    from lockgate.wiring import aws_module

    return aws_module(module, "`lockgate aws`")


def _session(settings: Settings, env: str, profile: str | None, region: str | None) -> Any:
    return _aws("session").aws_session(settings.env_config(env).aws, profile=profile, region=region)


@aws_app.command("deploy")
def deploy_command(
    ctx: typer.Context,
    env: EnvOption = None,
    profile: ProfileOption = None,
    region: RegionOption = None,
    image_digest: Annotated[
        str | None,
        typer.Option(help="Data-prep image digest (sha256:...) [default: the newest pushed]"),
    ] = None,
) -> None:
    """Create or update the environment's stacks (change sets; waits; prints the outputs)."""
    settings, name = named_env(ctx, env)
    if image_digest is not None and not image_digest.startswith("sha256:"):
        raise ConfigError(f"--image-digest must look like sha256:<64 hex>, not '{image_digest}'")
    session = _session(settings, name, profile, region)
    environment = _aws("environment")
    stage(f"deploying environment '{name}' to {session.region_name}")
    outcome = environment.deploy(
        session,
        name,
        settings.env_config(name).aws,
        image_digest=image_digest,
        monitoring_schedule=settings.file.monitor.schedule,
        endpoint_name=settings.endpoint_name(name),
        say=stage,
    )
    if outcome.environment is None:
        console.print(f"[yellow]next:[/yellow] {escape(outcome.next_step or '')}")
        return
    console.print(
        f"[green]deployed[/green] {outcome.environment.name}: data-prep runs {outcome.image_uri}"
    )
    for key, value in sorted(outcome.environment.outputs.items()):
        console.print(f"  {key:<24} {escape(value)}")
    console.print(
        "\nin lockgate.toml:\n"
        + escape(environment.store_snippet(name, outcome.environment.outputs))
    )


@aws_app.command("status")
def status_command(
    ctx: typer.Context,
    env: EnvOption = None,
    profile: ProfileOption = None,
    region: RegionOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON document.")] = False,
) -> None:
    """Stacks, the Lambda image (running vs newest pushed), endpoint, schedule, alarms."""
    settings, name = named_env(ctx, env)
    session = _session(settings, name, profile, region)
    state = _aws("environment").status(
        session, name, settings.env_config(name).aws, settings.endpoint_name(name)
    )
    if as_json:
        print(json.dumps(state.__dict__, indent=2, default=str))
        return
    for stack, status in state.stacks.items():
        console.print(f"stack    {stack:<28} {status}")
    latest = state.latest_image
    for function, found in state.functions.items():
        if not found:
            continue
        digest = found.get("digest")
        if found.get("state") == "not deployed":
            note = "not deployed"
        elif latest and digest != latest:
            note = (
                f"[yellow]behind[/yellow] the newest image {latest[:19]}: "
                f"run `lockgate aws sync-image --env {name}`"
            )
        else:
            note = "current"
        console.print(
            f"lambda   {function:<28} {found.get('state')} "
            f"{(digest or '-')[:19]} live=v{found.get('live_version') or '-'} {note}"
        )
    if state.endpoint:
        console.print(f"endpoint {state.endpoint['name']:<28} {state.endpoint['status']}")
    if state.schedule:
        console.print(
            f"schedule {state.schedule['name']:<28} {state.schedule['expression']} "
            f"({state.schedule['state']})"
        )
    for alarm, value in sorted(state.alarms.items()):
        colour = "green" if value == "OK" else "red" if value == "ALARM" else "yellow"
        console.print(f"alarm    {alarm:<28} [{colour}]{value}[/{colour}]")
    for problem in state.problems:
        err.print(f"[yellow]unavailable[/yellow] {escape(problem)}")


@aws_app.command("sync-image")
def sync_image_command(
    ctx: typer.Context,
    env: EnvOption = None,
    profile: ProfileOption = None,
    region: RegionOption = None,
    digest: Annotated[
        str | None, typer.Option(help="Image digest (sha256:...) [default: the newest pushed]")
    ] = None,
) -> None:
    """Point the data-prep (and monitor) Lambda at the newest data-prep image, if not already."""
    settings, name = named_env(ctx, env)
    session = _session(settings, name, profile, region)
    for result in _aws("environment").sync(session, name, digest=digest):
        if result.changed:
            console.print(
                f"[green]updated[/green] {result.function}: {result.previous_digest} -> "
                f"{result.digest} (version {result.version}, alias live)"
            )
        else:
            why = f" ({escape(result.reason)})" if result.reason else ""
            console.print(f"current  {result.function}: {result.digest}{why}")
