"""Why a raw file cannot be prepared: the rule it broke and where."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Rejection:
    """A broken rule, with an example a user can find in the file."""

    rule: str
    """Machine-readable rule: empty, no_rows, binary, encoding, unreadable, missing_column,
    malformed_rows, unparseable_values, no_target_values."""
    message: str
    column: str | None = None
    row: int | None = None
    """1-based data row (not counting the header) of the first example, when known."""
    value: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {name: value for name, value in asdict(self).items() if value is not None}


class FileRejected(Exception):
    """Raised while reading or validating one raw file; the file goes to quarantine."""

    def __init__(self, rejection: Rejection) -> None:
        super().__init__(rejection.message)
        self.rejection = rejection
