"""Answering several requests with one model call: each gets its own answer, or its own error."""

from __future__ import annotations

from lockgate.pipelines.deployment.payload import RequestRejected, Rows, parse_rows
from lockgate.serving.model import Answer, ModelFailed, load_served
from tests.serving.conftest import COLUMNS, FEATURES, Packages, Sample, assert_close


def rows(sample: Sample, count: int, **changes: object) -> Rows:
    parsed = parse_rows(sample.csv(count), "text/csv", COLUMNS)
    for name, value in changes.items():
        parsed.columns[name][-1] = value
    return parsed


def test_a_batch_answers_each_request_as_if_it_came_alone(
    packages: Packages, sample: Sample
) -> None:
    model = load_served(packages.fragile)
    requests = [
        rows(sample, 2),
        rows(sample, 3, tenure_months="many"),
        Rows({name: [None] for name in FEATURES if name != "plan"}, 1, text=True),
        rows(sample, 1, tenure_months="1e9"),  # valid, but this model fails on it
        rows(sample, 3),
    ]
    outcomes = model.answer(requests)

    assert [type(outcome) for outcome in outcomes] == [
        Answer,
        RequestRejected,
        RequestRejected,
        ModelFailed,
        Answer,
    ]
    assert str(outcomes[1]) == "column 'tenure_months' row 3: 'many' is not a number"
    assert "missing column 'plan'" in str(outcomes[2])
    for outcome, request in ((outcomes[0], requests[0]), (outcomes[4], requests[4])):
        [alone] = model.answer([request])
        assert isinstance(outcome, Answer) and isinstance(alone, Answer)
        assert outcome.predictions == alone.predictions
        assert_close(outcome.probabilities, alone.probabilities)
        assert len(outcome.predictions) == request.count


def test_a_value_whose_feature_overflows_is_refused_not_a_model_failure(
    packages: Packages, sample: Sample
) -> None:
    # A column with a tiny spread in training: standardising a number well inside float32's
    # range still overflows its feature.
    model = load_served(packages.logistic)
    [encoder] = [e for e in model.package.transformer.encoders_ if e.name == "support_calls"]
    encoder.scale = 1e-6
    requests = [rows(sample, 2), rows(sample, 3, support_calls="1e35"), rows(sample, 1)]
    outcomes = model.answer(requests)

    assert [type(outcome) for outcome in outcomes] == [Answer, RequestRejected, Answer]
    assert str(outcomes[1]) == (
        "column 'support_calls' row 3: 1e35 is out of range for model 'churn' "
        "(its standardised value overflows a 32-bit float)"
    )
