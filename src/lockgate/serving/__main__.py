"""``python -m lockgate.serving``: serve one model package (what the SageMaker image's
``serve`` runs, with ``--host 0.0.0.0``).

Kept to the standard library until the arguments are read: the server's start-up time is
part of how fast an endpoint becomes ready.
"""

from __future__ import annotations

import argparse
import os
import sys

SAGEMAKER_MODEL_DIR = "/opt/ml/model"
PORT_VARIABLE = "SAGEMAKER_BIND_TO_PORT"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m lockgate.serving",
        description="Serve a lockgate model package (SageMaker's /ping and /invocations).",
    )
    parser.add_argument(
        "--model-dir", default=SAGEMAKER_MODEL_DIR, help="the model package (default: %(default)s)"
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument(
        "--port",
        type=int,
        default=int(os.environ.get(PORT_VARIABLE) or 8080),
        help=f"port; 0 picks a free one (default: ${PORT_VARIABLE}, else 8080)",
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
