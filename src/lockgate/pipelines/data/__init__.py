"""The data pipeline: an upload under ``raw/`` becomes a dataset version under ``processed/``."""

from __future__ import annotations

from lockgate.pipelines.data.handler import HandleResult, handle
from lockgate.pipelines.data.prepare import PrepResult, prepare

__all__ = ["HandleResult", "PrepResult", "handle", "prepare"]
