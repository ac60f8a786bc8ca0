"""The study report: one offline HTML page whose numbers match scikit-learn's."""

from __future__ import annotations

import copy
import math
import re
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import confusion_matrix, roc_auc_score

from lockgate.pipelines.training.report import render_report, write_report
from lockgate.pipelines.training.report_data import Evaluation, StudyReport, TrialRow
from lockgate.pipelines.training.svg import MAX_POINTS

ERROR = (
    "Traceback (most recent call last):\n"
    '  File "entrypoint.py", line 42, in train\n'
    "ValueError: bad input <script>alert('x')</script> & more"
)


class Page(HTMLParser):
    """Every element of a page with its attributes and the text directly inside it."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.elements: list[tuple[str, dict[str, str], list[str]]] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, {k: v or "" for k, v in attrs}, []))

    def handle_data(self, data: str) -> None:
        if self.elements:
            self.elements[-1][2].append(data)

    def find(self, tag: str, **attrs: str) -> list[tuple[dict[str, str], str]]:
        """Elements with that tag whose attributes include ``attrs`` (``class_`` → class)."""
        wanted = {k.rstrip("_").replace("_", "-"): v for k, v in attrs.items()}
        return [
            (a, "".join(text).strip())
            for t, a, text in self.elements
            if t == tag and all(a.get(k) == v for k, v in wanted.items())
        ]

    def ids(self) -> set[str]:
        return {a["id"] for _, a, _ in self.elements if "id" in a}


def make_trials(rng: np.random.Generator, direction: str, n: int = 36) -> list[TrialRow]:
    """A study's worth of trials over three families, improving over time, with some pruned
    (with and without a last value), two failed and one still running."""
    sign = 1.0 if direction == "maximize" else -1.0
    base = 0.78 if direction == "maximize" else 4.0
    trials = []
    for number in range(n):
        family = ("logistic", "hgb", "rf")[number % 3]
        params: dict[str, str | int | float] = {"family": family}
        if family == "logistic":
            params["logistic.C"] = float(10 ** rng.uniform(-3, 2))
        elif family == "hgb":
            params["hgb.learning_rate"] = float(10 ** rng.uniform(-2, -0.5))
            params["hgb.max_depth"] = int(rng.integers(2, 11))
        else:
            params["rf.n_estimators"] = int(rng.integers(50, 500))
            params["rf.max_features"] = str(rng.choice(["sqrt", "log2", "all"]))
        value: float | None = base + sign * (0.1 * number / n + rng.normal(0, 0.03))
        state, error = "COMPLETE", None
        if number in (5, 17):
            state, error, value = "FAIL", ERROR, None
        elif number in (8, 20):
            state = "PRUNED"
        elif number == 26:
            state, value = "PRUNED", None
        elif number == n - 1:
            state, value = "RUNNING", None
        duration = None if state == "RUNNING" else float(rng.uniform(0.5, 95))
        trials.append(TrialRow(number, state, value, params, duration, family, error))
    return trials


def make_report(task: str, classes: int = 2, rows: int = 400) -> StudyReport:
    rng = np.random.default_rng(7 + classes)
    direction = "minimize" if task == "regression" else "maximize"
    metric = "rmse" if task == "regression" else "roc_auc"
    trials = make_trials(rng, direction)
    complete = [t for t in trials if t.state == "COMPLETE"]
    best = (max if direction == "maximize" else min)(complete, key=lambda t: t.value or 0.0)
    if task == "regression":
        target = rng.normal(50, 12, rows)
        evaluation = Evaluation(task, metric, 3.2, target, target + rng.normal(0.5, 3, rows))
    else:
        labels = rng.integers(0, classes, rows)
        logits = rng.normal(0, 1.2, (rows, classes))
        logits[np.arange(rows), labels] += 1.5
        # Logits on a 0.5 grid make tied scores, which the ROC must handle like scikit-learn.
        logits = np.round(logits * 2) / 2
        y_score = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
        names = ["stays", "churns"] if classes == 2 else ["bronze", "silver", "gold"]
        evaluation = Evaluation(
            task, metric, 0.8, labels, y_score.argmax(axis=1), y_score, names[:classes]
        )
    return StudyReport(
        study_name="churn-<b>&-study",
        dataset="churn",
        data_version="v-3f9a2c",
        metric=metric,
        direction=direction,
        trials=trials,
        importances={
            "family": 0.46,
            "hgb.learning_rate": 0.31,
            "logistic.C": 0.15,
            "rf.max_features": 0.08,
        },
        best=best,
        evaluation=evaluation,
        created_at="2025-11-22T09:00:00+00:00",
    )


REPORTS = {
    "binary": lambda: make_report("classification", 2),
    "multiclass": lambda: make_report("classification", 3),
    "regression": lambda: make_report("regression"),
}


@pytest.fixture(params=sorted(REPORTS))
def report(request: pytest.FixtureRequest) -> StudyReport:
    return REPORTS[request.param]()


def test_the_report_is_one_offline_document(report: StudyReport) -> None:
    html = render_report(report)
    page = Page(html)

    assert html.startswith("<!DOCTYPE html>")
    assert html.count("<html") == 1 and html.rstrip().endswith("</html>")
    links = [a[k] for _, a, _ in page.elements for k in ("src", "href") if k in a]
    assert links == []  # nothing to fetch: no images, stylesheets, fonts or scripts
    assert not re.search(r"https?://", html)
    assert "<script" not in html and "<link" not in html and "url(" not in html


def test_every_chart_is_well_formed_svg(report: StudyReport) -> None:
    charts = re.findall(r"<svg\b.*?</svg>", render_report(report), flags=re.S)

    assert len(charts) >= 6
    for chart in charts:
        ET.fromstring(chart)  # noqa: S314 - our own output, parsed to prove it is well formed


@pytest.mark.parametrize(
    ("name", "charts"),
    [
        ("binary", {"chart-confusion-matrix", "chart-roc"}),
        ("multiclass", {"chart-confusion-matrix", "chart-roc"}),
        ("regression", {"chart-residuals", "chart-predicted-actual"}),
    ],
)
def test_the_report_has_every_section_and_chart(name: str, charts: set[str]) -> None:
    report = REPORTS[name]()
    page = Page(render_report(report))

    sections = {"summary", "history", "importances", "slices", "evaluation", "top-trials"}
    assert sections | {"failed-trials", "chart-history", "chart-importances"} | charts <= page.ids()
    assert [h for _, h in page.find("h2")] == [
        "Optimisation history",
        "Parameter importances",
        "Metric by parameter",
        "Best model on the test split",
        "Top trials",
        "Failed trials",
    ]
    params = {p for t in report.trials if t.state == "COMPLETE" for p in t.params}
    assert {a["data-param"] for a, _ in page.find("figure", class_="slice")} == params
    bars = [a["data-label"] for a, _ in page.find("g", class_="bar-row")]
    assert bars == sorted(report.importances, key=lambda p: -report.importances[p])


def test_the_summary_counts_trials_by_state() -> None:
    report = make_report("classification")
    html = render_report(report)

    for state, expected in (("COMPLETE", 30), ("PRUNED", 3), ("FAIL", 2), ("RUNNING", 1)):
        assert sum(t.state == state for t in report.trials) == expected
        assert re.search(rf'data-state="{state}"><b>{expected}</b>', html)
    assert report.best is not None and f"trial {report.best.number}," in html


@pytest.mark.parametrize("classes", [2, 3])
def test_the_confusion_matrix_counts_what_sklearn_counts(classes: int) -> None:
    report = make_report("classification", classes)
    evaluation = report.evaluation
    assert evaluation is not None and evaluation.classes is not None
    page = Page(render_report(report))

    shown = np.zeros((classes, classes), dtype=int)
    for attrs, _ in page.find("g", class_="cm-cell"):
        shown[int(attrs["data-row"]), int(attrs["data-col"])] = int(attrs["data-count"])
    printed = [int(text) for _, text in page.find("text") if text.isdigit()]

    expected = confusion_matrix(evaluation.y_true, evaluation.y_pred, labels=range(classes))
    assert (shown == expected).all()
    assert set(expected.ravel()) <= set(printed)
    labels = {text for _, text in page.find("text")}
    assert set(evaluation.classes) <= labels


def test_the_binary_auc_is_sklearns() -> None:
    report = make_report("classification", 2)
    evaluation = report.evaluation
    assert evaluation is not None and evaluation.y_score is not None
    page = Page(render_report(report))

    [(_, auc)] = page.find("td", class_="auc")
    expected = roc_auc_score(evaluation.y_true, evaluation.y_score[:, 1])
    assert auc == f"{expected:.3f}"
    assert [a["data-curve"] for a, _ in page.find("tr") if "data-curve" in a] == ["churns vs stays"]


def test_the_multiclass_aucs_are_sklearns_one_vs_rest() -> None:
    report = make_report("classification", 3)
    evaluation = report.evaluation
    assert evaluation is not None and evaluation.y_score is not None
    page = Page(render_report(report))

    per_class = [float(text) for _, text in page.find("td", class_="auc")]
    [(_, macro)] = page.find("td", class_="auc-macro")
    expected = [roc_auc_score(evaluation.y_true == k, evaluation.y_score[:, k]) for k in range(3)]
    assert per_class == [round(e, 3) for e in expected]
    ovr = roc_auc_score(evaluation.y_true, evaluation.y_score, multi_class="ovr")
    assert macro == f"{ovr:.3f}"
    assert len(page.find("polyline", class_="curve")) == 3


@pytest.mark.parametrize("name", ["binary", "regression"])
def test_the_top_table_is_the_best_ten_in_metric_order(name: str) -> None:
    report = REPORTS[name]()
    page = Page(render_report(report))

    rows = [int(a["data-trial"]) for a, _ in page.find("tr") if "data-trial" in a]
    values = [float(text) for _, text in page.find("td", class_="value")]
    maximize = report.direction == "maximize"
    complete = [t for t in report.trials if t.state == "COMPLETE"]
    expected = sorted(complete, key=lambda t: t.value or 0.0, reverse=maximize)[:10]

    assert len(rows) == 10
    assert rows == [t.number for t in expected]
    assert values == sorted(values, reverse=maximize)
    assert report.best is not None and rows[0] == report.best.number
    assert page.find("tr", class_="best")[0][0]["data-trial"] == str(report.best.number)


def test_text_from_data_is_escaped() -> None:
    html = render_report(make_report("classification"))
    page = Page(html)

    errors = [text for _, text in page.find("pre", class_="error")]
    assert errors == [ERROR, ERROR]  # the browser shows the error exactly as raised
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; more" in html
    assert "<script" not in html and "<b>&" not in html
    assert [h for _, h in page.find("h1")] == ["churn-<b>&-study"]
    assert [a["data-trial"] for a, _ in page.find("li")] == ["5", "17"]


def test_an_empty_study_still_renders_and_says_why() -> None:
    trials = [
        TrialRow(0, "FAIL", None, {"family": "rf"}, 1.5, "rf", ERROR),
        TrialRow(1, "RUNNING", None, {}, None, None, None),
    ]
    report = StudyReport("empty", "churn", "v1", "f1", "maximize", trials, {}, None, None, "now")
    page = Page(render_report(report))

    assert "no-complete-trials" in page.ids()
    notes = " ".join(text for _, text in page.find("p", class_="note"))
    assert "No trial has a value yet." in notes
    assert "Too few complete trials to compute parameter importances (0 complete)" in notes
    assert "The best model has not been scored on test." in notes
    assert "No complete trial to compare." in notes
    assert page.find("svg") == []
    assert [a["data-trial"] for a, _ in page.find("li")] == ["0"]


def test_a_study_with_no_trials_at_all_renders() -> None:
    report = StudyReport("new", "churn", "v1", "rmse", "minimize", [], {}, None, None, "now")
    page = Page(render_report(report))

    assert {"summary", "no-complete-trials", "failed-trials"} <= page.ids()
    assert "No trial failed." in [text for _, text in page.find("p", class_="note")]


def test_the_same_report_renders_the_same_bytes(report: StudyReport) -> None:
    assert render_report(report) == render_report(copy.deepcopy(report))


def test_big_test_splits_are_thinned_for_the_plots() -> None:
    report = make_report("regression", rows=5000)
    page = Page(render_report(report))

    assert len(page.find("circle", class_="pt-eval")) == 2 * MAX_POINTS
    assert "plots show 1500 of 5000 rows" in page.find("p", id="regression-stats")[0][1]
    assert "R²" in page.find("p", id="regression-stats")[0][1]


def test_the_regression_summary_numbers_are_right() -> None:
    report = make_report("regression")
    evaluation = report.evaluation
    assert evaluation is not None
    [(_, stats)] = Page(render_report(report)).find("p", id="regression-stats")

    residual = evaluation.y_true - evaluation.y_pred
    assert f"RMSE {math.sqrt(np.mean(residual**2)):.4f}" in stats
    assert f"MAE {np.mean(np.abs(residual)):.4f}" in stats


def test_slices_pick_their_axis_from_the_parameter_values() -> None:
    page = Page(render_report(make_report("classification")))

    kinds: dict[str, str] = {}
    param = ""
    for tag, attrs, text in page.elements:
        if tag == "figure" and attrs.get("class") == "slice":
            param = attrs["data-param"]
        elif tag == "small" and param:
            kinds[param], param = "".join(text), ""
    assert kinds == {
        "family": "categorical",
        "hgb.learning_rate": "numeric",
        "logistic.C": "log scale",  # 1e-3 .. 1e2 spans decades
        "rf.max_features": "categorical",
        "hgb.max_depth": "numeric",
        "rf.n_estimators": "numeric",
    }
    assert list(kinds)[:4] == ["family", "hgb.learning_rate", "logistic.C", "rf.max_features"]


def test_write_report_writes_utf8(tmp_path: Path) -> None:
    report = make_report("classification", 3)

    path = write_report(report, tmp_path / "reports" / "study.html")

    assert path == tmp_path / "reports" / "study.html"
    assert path.read_bytes() == render_report(report).encode("utf-8")


def test_a_bad_direction_or_class_labels_are_refused() -> None:
    with pytest.raises(ValueError, match="direction must be"):
        StudyReport("s", "d", "v", "m", "up", [], {}, None, None, "now")
    names = np.array(["a", "b"])
    evaluation = Evaluation("classification", "f1", 0.5, names, names, None, ["a", "b"])
    report = StudyReport("s", "d", "v", "f1", "maximize", [], {}, None, evaluation, "now")
    with pytest.raises(ValueError, match="class indices"):
        render_report(report)
