"""lockgate: event-driven MLOps pipelines that run on a laptop and on AWS unchanged."""

from __future__ import annotations

__version__ = "0.1.0"
