"""lockgate.toml's tables for this machine: the local runtime (`lockgate up`) and the logs.

Kept apart from :mod:`lockgate.config` so that module stays about the pipelines; both models
are fields of its ``FileConfig``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RuntimeConfig(_Strict):
    """The local event runtime (`lockgate up`)."""

    poll_interval: float | None = Field(
        None, gt=0.0, le=60.0, description="seconds between listings; default by store"
    )
    workers: int = Field(
        2, ge=1, le=64, description="jobs run at once (a study counts as one; one study at a time)"
    )
    stop_grace: float = Field(
        30.0,
        ge=0.0,
        description="seconds running jobs get to finish on Ctrl-C/SIGTERM before they are "
        "stopped and recorded as interrupted",
    )
    serve: bool = Field(
        True, description="keep the local endpoint of every environment with a release serving"
    )
    restart_backoff: float = Field(
        1.0, gt=0.0, description="seconds before restarting a crashed endpoint, doubled per crash"
    )
    restart_backoff_max: float = Field(
        60.0, gt=0.0, description="longest wait between endpoint restarts"
    )

    def interval_for(self, store_uri: str) -> float:
        """The configured interval, else 0.1 s for a folder and 1 s for S3 (LIST costs money)."""
        if self.poll_interval is not None:
            return self.poll_interval
        return 0.1 if store_uri.startswith("file://") else 1.0


class LogsConfig(_Strict):
    """lockgate's structured logs (JSON lines in ``.lockgate/<env>/logs/``)."""

    level: Literal["debug", "info", "warning", "error"] = Field(
        "info", description="lowest level written to the log folder"
    )
    retention_days: int = Field(14, ge=1, description="daily log files older than this are deleted")
