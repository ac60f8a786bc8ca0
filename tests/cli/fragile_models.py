"""A model that works where it is promoted but not in the endpoint's process, as a package
built against another library version would: the hot-swap failure path, end to end."""

from __future__ import annotations

import os
from typing import Any

from tests.serving.models import Fragile

BREAK_HERE = "LOCKGATE_TEST_BREAK_MODELS"
"""Set in a process's environment: every BreaksOnTheEndpoint loaded there fails to predict."""


class BreaksOnTheEndpoint(Fragile):
    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        if os.environ.get(BREAK_HERE):
            self.limit = -1.0  # every input is now out of range
