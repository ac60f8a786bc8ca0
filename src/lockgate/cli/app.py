"""The ``lockgate`` command and its global options.

Heavy modules (pyarrow, scikit-learn, boto3) are imported inside the commands that need them,
so ``lockgate --help`` starts fast.
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from lockgate import __version__
from lockgate.errors import LockgateError

if TYPE_CHECKING:
    from lockgate.config import Settings
    from lockgate.ports.store import Store

app = typer.Typer(
    name="lockgate",
    help="Event-driven MLOps pipelines (data, training, deployment, monitoring) "
    "that run on a laptop and on AWS unchanged.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
data_app = typer.Typer(
    help="The data pipeline: raw uploads -> dataset versions.", no_args_is_help=True
)
app.add_typer(data_app, name="data")


@dataclass
class Context:
    """What the global options resolved to; built lazily so --help reads no file."""

    config: Path | None
    env: str | None
    store: str | None

    verbose: bool = False
    _logging_for: Path | None = None

    def settings(self, dataset: str | None = None) -> Settings:
        """The resolved settings; the first call also starts the environment's JSON log."""
        from lockgate.config import load_settings

        settings = load_settings(self.config, self.env, self.store, dataset)
        use_aws_config(settings)
        if self._logging_for != settings.env_dir:
            self._logging_for = settings.env_dir
            configure_logs(settings, self.verbose)
        return settings

    def open_store(self, settings: Settings) -> Store:
        from lockgate.wiring import lean_arrow_memory, open_store

        lean_arrow_memory()
        return open_store(settings.store_uri)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"lockgate {__version__}")
        raise typer.Exit()


@app.callback()
def _global(
    ctx: typer.Context,
    config: Annotated[
        Path | None,
        typer.Option(
            help="Project configuration [env: LOCKGATE_CONFIG] [default: ./lockgate.toml]"
        ),
    ] = None,
    env: Annotated[
        str | None,
        typer.Option(
            help="Environment (dev, staging, prod, ...) [env: LOCKGATE_ENV] [default: dev]"
        ),
    ] = None,
    store: Annotated[
        str | None,
        typer.Option(
            help="Store URI for this environment, file:///... or s3://bucket/prefix "
            "[env: LOCKGATE_STORE]"
        ),
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log what happens.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.ERROR,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    ctx.obj = Context(config=config, env=env, store=store, verbose=verbose)


def use_aws_config(settings: Settings) -> None:
    """Let every AWS call of this process use the environment's profile and region.

    The S3 store, SageMaker and SNS build their clients from boto3's defaults; setting
    ``AWS_PROFILE`` and ``AWS_DEFAULT_REGION`` from ``[envs.<env>.aws]`` (unless the shell set
    them, which wins, as every environment variable wins over lockgate.toml) makes them use the
    same account as `lockgate aws` and the training launcher. Child processes inherit them.
    """
    aws = settings.env_config().aws
    if aws.profile and not os.environ.get("AWS_PROFILE"):
        os.environ["AWS_PROFILE"] = aws.profile
    if aws.region and not (os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")):
        os.environ["AWS_DEFAULT_REGION"] = aws.region


def configure_logs(settings: Settings, verbose: bool = False, pipeline: str | None = None) -> None:
    """lockgate's records as JSON lines in the environment's log folder, and readable on the
    terminal (errors only, everything with --verbose)."""
    from lockgate import logs

    logs.configure(
        folder=logs.log_folder(settings.env_dir),
        file_level=settings.file.logs.level,
        terminal_level=logging.INFO if verbose else logging.ERROR,
        retention_days=settings.file.logs.retention_days,
        env=settings.env,
        pipeline=pipeline,
    )


def main() -> None:
    """Console entry point: a user error is one line on stderr and exit code 1."""
    from lockgate.cli import (  # noqa: F401 - registers the commands
        aws,
        commands,
        demo,
        deployment,
        logs,
        monitoring,
        runtime,
        serving,
        status,
        training,
    )

    try:
        # Standalone mode: typer reports usage errors itself and exits with their codes.
        app(prog_name="lockgate")
    except LockgateError as exc:
        _fail(str(exc), 1)
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError) as exc:
        _fail(f"{exc.strerror}: {exc.filename}", 1)
    except KeyboardInterrupt:
        _fail("interrupted", 130)
    except Exception as exc:
        if os.environ.get("LOCKGATE_DEBUG"):
            raise
        _fail(
            f"unexpected error: {type(exc).__name__}: {exc} "
            "(set LOCKGATE_DEBUG=1 to see the traceback)",
            2,
        )


def _fail(message: str, code: int) -> None:
    print(f"lockgate: error: {message}", file=sys.stderr)
    sys.exit(code)
