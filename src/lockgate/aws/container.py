"""``python -m lockgate.aws.container train|serve``: the SageMaker image's entry point.

SageMaker starts one image two ways, and this module is its ``ENTRYPOINT``
(docker/sagemaker.Dockerfile):

- a training job runs ``docker run <image> train``: one trial of a study, through
  :mod:`lockgate.pipelines.training.entrypoint` (hyperparameters and the ``train`` and
  ``validation`` channels under ``/opt/ml/input``; ``model.pkl`` and ``metrics.json`` to
  ``/opt/ml/model``; on failure ``/opt/ml/output/failure`` and exit 1). Arguments after
  ``train`` are ignored, as the trial entrypoint ignores them.
- an endpoint runs ``docker run <image> serve``: the model package in ``/opt/ml/model`` served
  on ``0.0.0.0:$SAGEMAKER_BIND_TO_PORT`` (else 8080), through ``python -m lockgate.serving
  serve``; arguments after ``serve`` are that command's flags (``--port``, ``--host``, ...).

Anything else prints the usage and exits 2. Both modes run in this process, so SageMaker's
SIGTERM reaches the server or the trial directly.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Sequence

TRAIN = "train"
SERVE = "serve"
PROG = "python -m lockgate.aws.container"
USAGE = f"""\
usage: {PROG} {{{TRAIN},{SERVE}}} [serve options]

lockgate's SageMaker container: SageMaker runs it with '{TRAIN}' for a training job and with
'{SERVE}' for an endpoint.

  {TRAIN}   train one trial: hyperparameters and the train/validation channels from
          /opt/ml/input, model.pkl and metrics.json to /opt/ml/model, the reason of a
          failure to /opt/ml/output/failure (the SM_* variables move them)
  {SERVE}   serve the model package in /opt/ml/model on 0.0.0.0:$SAGEMAKER_BIND_TO_PORT
          (else 8080); its options: python -m lockgate.serving --help
"""


def main(argv: Sequence[str] | None = None) -> int:
    """Run the mode ``argv[0]`` names; returns the process exit code.

    Args:
        argv: the arguments after the program name (default ``sys.argv[1:]``).
    """
    args = list(sys.argv[1:] if argv is None else argv)
    mode = args[0] if args else None
    if mode == TRAIN:
        # Imported here: numpy and scikit-learn are not needed to serve or print the usage.
        from lockgate.pipelines.training.entrypoint import main as train

        return train(args[1:])
    if mode == SERVE:
        return _serving_main()([SERVE, *args[1:]])
    if mode in ("-h", "--help"):
        print(USAGE, end="")
        return 0
    problem = "no mode given" if mode is None else f"unknown mode '{mode}'"
    print(f"{PROG}: {problem}; use {TRAIN} or {SERVE}\n\n{USAGE}", end="", file=sys.stderr)
    return 2


def _serving_main() -> Callable[[list[str]], int]:
    # lockgate.aws and lockgate.serving are independent adapters (pyproject's layers
    # contract); this entry point composes them, as the CLI does, so it loads the server's
    # command by name rather than importing it.
    module = importlib.import_module("lockgate.serving.__main__")
    serve: Callable[[list[str]], int] = module.main
    return serve


if __name__ == "__main__":
    sys.exit(main())
