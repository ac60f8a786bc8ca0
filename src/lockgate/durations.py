"""Durations as people write them in lockgate.toml and on the command line."""

from __future__ import annotations

import re

from lockgate.errors import ConfigError

UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION = re.compile(r"(?:\d+(?:\.\d+)?[smhd])+|\d+(?:\.\d+)?")
_PART = re.compile(r"(\d+(?:\.\d+)?)([smhd]?)")


def seconds_in(text: str) -> float | None:
    """``14d``, ``2h``, ``30m``, ``90s``, a sum like ``1h30m``, or plain seconds -> seconds;
    None if ``text`` is none of these."""
    compact = text.strip().lower()
    if not _DURATION.fullmatch(compact):
        return None
    return sum(float(number) * UNITS.get(unit, 1.0) for number, unit in _PART.findall(compact))


def parse_duration(text: str | None, what: str = "duration") -> float | None:
    """Like :func:`seconds_in`, for a setting: None or ``""`` is None (no limit).

    Raises:
        ConfigError: not such a duration, or not longer than zero; the message names ``what``.
    """
    if text is None or text == "":
        return None
    seconds = seconds_in(text)
    if seconds is None:
        raise ConfigError(f"{what} '{text}' is not a duration like 14d, 1h, 15m or 90s")
    if seconds <= 0:
        raise ConfigError(f"{what} '{text}' must be longer than zero")
    return seconds
