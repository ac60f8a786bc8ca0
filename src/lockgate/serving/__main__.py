"""``python -m lockgate.serving [serve]``: serve one model package.

SageMaker starts an inference container as ``docker run <image> serve``, so the image's
entry point is ``python -m lockgate.serving`` and ``serve`` arrives as the first argument.
With it, the defaults are SageMaker's: the package in ``/opt/ml/model``, every interface
(``0.0.0.0``) and port ``$SAGEMAKER_BIND_TO_PORT``, else 8080. Without it, the server
listens on 127.0.0.1 only (a local run should not be reachable from the network). Flags
override either way: ``python -m lockgate.serving serve --port 9000``.

Kept to the standard library until the arguments are read: the server's start-up time is
part of how fast an endpoint becomes ready.
"""

from __future__ import annotations

import argparse
import os
import sys

SAGEMAKER_MODEL_DIR = "/opt/ml/model"
PORT_VARIABLE = "SAGEMAKER_BIND_TO_PORT"
SERVE = "serve"
"""The argument SageMaker runs an inference image with."""
LOCAL_HOST = "127.0.0.1"
SAGEMAKER_HOST = "0.0.0.0"  # noqa: S104 - SageMaker routes to the container from outside it
DEFAULT_PORT = 8080


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m lockgate.serving",
        description="Serve a lockgate model package (SageMaker's /ping and /invocations).",
        epilog=(
            f"SageMaker runs the image with '{SERVE}': then the server listens on "
            f"{SAGEMAKER_HOST} and serves {SAGEMAKER_MODEL_DIR}, as the container contract "
            f"requires; without it, on {LOCAL_HOST}."
        ),
    )
    parser.add_argument(
        "mode",
        nargs="?",
        choices=[SERVE],
        metavar=SERVE,
        help=f"run as SageMaker's inference container (default host {SAGEMAKER_HOST})",
    )
    parser.add_argument(
        "--model-dir", default=SAGEMAKER_MODEL_DIR, help="the model package (default: %(default)s)"
    )
    parser.add_argument(
        "--host",
        help=f"address to listen on (default: {LOCAL_HOST}; {SAGEMAKER_HOST} with '{SERVE}')",
    )
    parser.add_argument(
        "--port",
        type=int,
        help=f"port; 0 picks a free one (default: ${PORT_VARIABLE}, else {DEFAULT_PORT})",
    )
    parser.add_argument("--store", help="store URI for data capture and serving records")
    parser.add_argument("--env", help="environment whose ledger gets the serving records")
    parser.add_argument("--endpoint-name", default="lockgate", help="endpoint name (capture)")
    parser.add_argument(
        "--capture-percent", type=float, default=100.0, help="share of requests captured"
    )
    parser.add_argument("--state-file", help="where to write the pid, URL and swap token")
    args = parser.parse_args(argv)
    if not 0.0 <= args.capture_percent <= 100.0:
        parser.error("--capture-percent must be between 0 and 100")
    if args.host is None:
        args.host = SAGEMAKER_HOST if args.mode == SERVE else LOCAL_HOST
    if args.port is None:
        variable = os.environ.get(PORT_VARIABLE) or str(DEFAULT_PORT)
        if not variable.isdigit():
            parser.error(f"${PORT_VARIABLE} must be a port number, not {variable!r}")
        args.port = int(variable)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from lockgate.errors import LockgateError
    from lockgate.serving.server import run

    try:
        store = None
        if args.store:
            from lockgate.wiring import open_store

            store = open_store(args.store)
        run(
            args.model_dir,
            host=args.host,
            port=args.port,
            store=store,
            env=args.env,
            endpoint_name=args.endpoint_name,
            capture_percent=args.capture_percent,
            state_file=args.state_file,
        )
    except LockgateError as exc:
        print(f"lockgate.serving: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
