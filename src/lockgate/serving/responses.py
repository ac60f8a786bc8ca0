"""Predictions to response bodies (JSON or headerless CSV), chosen by the ``Accept`` header."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from lockgate.pipelines.deployment.payload import CSV, JSON, RequestRejected, Rows
from lockgate.serving.model import Answer

_WILDCARDS = {"*/*": None, "text/*": CSV, "application/*": JSON}


def response_type(accept: str | None, request_type: str) -> str:
    """The response content type for ``accept``: JSON or CSV; a wildcard or no header answers
    in the request's kind (JSON Lines requests get JSON).

    Raises:
        RequestRejected: 406, the header accepts neither JSON nor CSV.
    """
    same = CSV if request_type == CSV else JSON
    if not accept:
        return same
    choices = []
    for position, item in enumerate(accept.split(",")):
        media, _, params = item.partition(";")
        media = media.strip().lower()
        if media in (CSV, JSON):
            choice: str | None = media
        elif media in _WILDCARDS:
            choice = _WILDCARDS[media] or same
        else:
            continue
        quality = _quality(params)
        if quality > 0:
            choices.append((-quality, position, choice))
    if not choices:
        raise RequestRejected(406, f"cannot answer in '{accept}'; accept {JSON} or {CSV} (or */*)")
    return str(min(choices)[2])


def _quality(params: str) -> float:
    for param in params.split(";"):
        key, _, value = param.partition("=")
        if key.strip().lower() == "q":
            try:
                return float(value)
            except ValueError:
                return 0.0
    return 1.0


def render(
    kind: str,
    rows: Rows,
    answer: Answer,
    ids: list[str],
    classes: list[str] | None,
    head: dict[str, Any],
) -> bytes:
    """The response body: per row, the id values the request sent, the prediction and (for a
    classifier) the probability of each class.

    Args:
        kind: :data:`JSON` or :data:`CSV`.
        ids: the package's id columns; those the request sent are echoed for joining.
        head: JSON only: what the document says besides ``predictions`` (model, version, ...).
    """
    echoed = [name for name in ids if name in rows.columns]
    if kind == CSV:
        return _csv(rows, answer, echoed)
    items = []
    for row, prediction in enumerate(answer.predictions):
        item = {name: rows.columns[name][row] for name in echoed}
        item["prediction"] = prediction
        if answer.probabilities is not None and classes is not None:
            item["probabilities"] = dict(zip(classes, answer.probabilities[row], strict=True))
        items.append(item)
    return json.dumps({"predictions": items, **head}, separators=(",", ":")).encode()


def _csv(rows: Rows, answer: Answer, echoed: list[str]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    for row, prediction in enumerate(answer.predictions):
        line = [rows.columns[name][row] for name in echoed]
        line.append(prediction)
        if answer.probabilities is not None:
            line.extend(answer.probabilities[row])
        writer.writerow(line)
    return out.getvalue().encode()


def error_body(message: str) -> bytes:
    """``{"error": message}``, the body of every 4xx and 5xx answer."""
    return json.dumps({"error": message}).encode()
