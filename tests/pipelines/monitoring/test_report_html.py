"""The monitoring report page: what a reader sees for a run's report.json document."""

from __future__ import annotations

import copy
import html
import os
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from lockgate.pipelines.monitoring.report_html import (
    render_monitoring_report,
    write_monitoring_report,
)

SCRIPT = "<script>alert('x')</script>"


def numeric(name: str, drifted: bool, **extra: Any) -> dict[str, Any]:
    """A numeric feature compared with a KS test; drifted ones shift to the right."""
    current = [0.05, 0.15, 0.3, 0.5] if drifted else [0.24, 0.26, 0.25, 0.25]
    feature = {
        "feature": name,
        "kind": "numeric",
        "test": "ks",
        "statistic": 0.31 if drifted else 0.02,
        "p_value": 0.00012 if drifted else 0.61,
        "p_adjusted": 0.0024 if drifted else 0.83,
        "effect": "wasserstein",
        "effect_size": 0.4 if drifted else 0.013,
        "effect_threshold": 0.1,
        "drifted": drifted,
        "n_reference": 5000,
        "n_current": 812,
        "distribution": {
            "edges": [0.0, 10.0, 20.0, 30.0, 40.0],
            "reference": [0.25, 0.25, 0.25, 0.25],
            "current": current,
        },
    }
    return feature | extra


def categorical(name: str, drifted: bool, values: list[str] | None = None) -> dict[str, Any]:
    """A categorical feature compared with a chi-squared test."""
    values = values or ["basic", "plus", "pro"]
    reference = [1 / len(values)] * len(values)
    current = [0.7, *([0.3 / (len(values) - 1)] * (len(values) - 1))] if drifted else reference
    return {
        "feature": name,
        "kind": "categorical",
        "test": "chi2",
        "statistic": 84.2 if drifted else 1.3,
        "p_value": 1e-12 if drifted else 0.52,
        "p_adjusted": 4e-11 if drifted else 0.77,
        "effect": "jensen_shannon",
        "effect_size": 0.21 if drifted else 0.004,
        "effect_threshold": 0.1,
        "drifted": drifted,
        "n_reference": 5000,
        "n_current": 812,
        "distribution": {"values": values, "reference": reference, "current": current},
    }


def run(n: int, verdict: str, share: float | None, auc: float | None) -> dict[str, Any]:
    """One entry of the history: a past monitoring run."""
    return {
        "run": f"2026-11-2{n}T10-00-00Z-run{n}",
        "time": f"2026-11-2{n}T10:00:00+00:00",
        "verdict": verdict,
        "rows": 0 if share is None else 1000,
        "share": share,
        "metrics": None if auc is None else {"roc_auc": auc},
    }


def document(**overrides: Any) -> dict[str, Any]:
    """A drifted run with labels: two drifted features listed after two clean ones."""
    doc: dict[str, Any] = {
        "run": "2026-11-26T10-00-00Z-ab12cd",
        "time": "2026-11-26T10:00:00+00:00",
        "endpoint": "lockgate-prod",
        "env": "prod",
        "window": {"start": "2026-11-25T10:00:00+00:00", "end": "2026-11-26T10:00:00+00:00"},
        "release": {
            "seq": 3,
            "model": "churn",
            "version": 4,
            "data_version": "dv-20261101-aa",
            "package_sha256": "9f" * 32,
        },
        "rows": 1234,
        "requests": 456,
        "verdict": "drift",
        "messages": [],
        "data_quality": {
            "violations": [
                {
                    "feature_name": "tenure",
                    "constraint_check_type": "data_type_check",
                    "description": "3 rows are not numbers",
                }
            ]
        },
        "data_drift": {
            "share": 0.5,
            "weighted_share": 0.45,
            "threshold": 0.3,
            "drifted": True,
            "features": [
                numeric("monthly_charges", False),
                categorical("contract", False),
                numeric("tenure", True),
                categorical("plan", True),
            ],
        },
        "model_quality": {
            "labels": 120,
            "unknown_labels": 3,
            "ambiguous_labels": 1,
            "metrics": {"roc_auc": 0.71, "accuracy": 0.83},
            "release_metrics": {"roc_auc": 0.8, "accuracy": 0.84},
            "tolerance": 0.05,
            "degraded": ["roc_auc"],
        },
        "prediction_drift": None,
        "history": [
            run(3, "ok", 0.0, 0.81),
            run(4, "no_data", None, None),
            run(5, "ok", 0.25, 0.79),
            run(6, "drift", 0.5, 0.71),
        ],
    }
    return doc | overrides


def section(page: str, section_id: str) -> str:
    found = re.search(rf'<section id="{section_id}">(.*?)</section>', page, re.S)
    assert found, f"no section {section_id}"
    return found.group(1)


def drift_rows(part: str) -> list[tuple[str, bool]]:
    """(feature name as a reader sees it, drifted?) for each row of a features table."""
    rows = re.findall(
        r'<tr id="[a-z]+-\d+" class="feature[^"]*" data-drifted="(true|false)">'
        r'<th scope="row" class="feature-name">(.*?)<small>',
        part,
    )
    return [(html.unescape(name), flag == "true") for flag, name in rows]


def svgs(page: str) -> dict[str, ET.Element]:
    """Every inline chart, parsed as XML (so a stray ``<`` from user data would fail)."""
    found = re.findall(r"<svg .*?</svg>", page, re.S)
    charts = {chart.attrib["id"]: chart for chart in map(ET.fromstring, found)}
    assert len(charts) == len(found), "two charts share an id"
    return charts


@pytest.mark.parametrize(
    ("verdict", "text"),
    [("ok", "OK"), ("drift", "Drift"), ("violations", "Violations"), ("no_data", "No data")],
)
def test_the_verdict_leads_the_page_in_its_own_colour(verdict: str, text: str) -> None:
    page = render_monitoring_report(document(verdict=verdict))

    found = re.search(r'<p id="verdict" class="verdict ([a-z_]+)"[^>]*>(.*?)</p>', page)
    assert found and found.groups() == (verdict, text)
    assert page.index('id="verdict"') < page.index('<section id="data-quality">')


def test_the_summary_names_endpoint_window_traffic_and_release() -> None:
    header = render_monitoring_report(document()).split("</header>")[0]

    for fact in ("lockgate-prod", "prod", "2026-11-25T10:00:00+00:00", "1,234 rows, 456 requests"):
        assert fact in header
    assert "churn v4 (release 3)" in header and "dv-20261101-aa" in header


def test_drifted_features_come_first_with_their_tests_and_effect_sizes() -> None:
    part = section(render_monitoring_report(document()), "data-drift")

    # Given clean features first; drifted ones lead, furthest past their threshold first
    # (tenure 0.4 is 4x its threshold, plan 0.21 is 2.1x), as do the clean ones.
    assert drift_rows(part) == [
        ("tenure", True),
        ("plan", True),
        ("monthly_charges", False),
        ("contract", False),
    ]
    assert "<b>2 of 4</b> features drifted" in part
    assert "share 0.5000, weighted share 0.4500 against a threshold of 0.3000" in part
    assert "dataset drifted" in part
    tenure = part[part.index("tenure<small>") :].split("</tr>")[0]
    assert "ks<small>statistic 0.3100" in tenure
    assert "0.00012<small>adjusted 0.0024" in tenure
    assert '<span class="over">0.4000</span><small>wasserstein ≥ 0.1000' in tenure
    clean = part[part.index("contract<small>") :].split("</tr>")[0]
    assert "0.5200<small>adjusted 0.7700" in clean and "jensen_shannon &lt; 0.1000" in clean


def test_drifted_features_are_linked_from_the_top_of_the_section() -> None:
    part = section(render_monitoring_report(document()), "data-drift")

    assert re.search(r'Drifted: <a href="#feature-0">tenure</a> <a href="#feature-1">plan', part)


def test_each_feature_has_a_chart_of_reference_against_current() -> None:
    page = render_monitoring_report(document())
    charts = svgs(page)

    for index in range(4):
        assert f"chart-feature-{index}" in charts
    tenure = charts["chart-feature-0"]  # numeric: two step histograms over the same bins
    lines = {p.attrib["class"]: p.attrib["points"] for p in tenure.iter("polyline")}
    assert set(lines) == {"dist-ref", "dist-cur"}
    assert lines["dist-ref"].split()[0] == lines["dist-cur"].split()[0]
    assert lines["dist-ref"].split()[-1] == lines["dist-cur"].split()[-1]
    assert len(list(tenure.iter("rect"))) == 4  # one tooltip per bin
    plan = charts["chart-feature-1"]  # categorical: a pair of bars per value
    bars = [r.attrib["class"] for r in plan.iter("rect")]
    assert bars.count("bar-ref") == bars.count("bar-cur") == 3
    assert [t.text for t in plan.iter("text")][::2] == ["basic", "plus", "pro"]


def test_numeric_bins_with_open_ends_plot_at_finite_positions() -> None:
    feature = numeric("age", True)
    feature["distribution"]["edges"] = [float("-inf"), 18.0, 40.0, 65.0, float("inf")]
    page = render_monitoring_report(document(data_drift={"features": [feature]}))

    chart = svgs(page)["chart-feature-0"]
    coordinates = " ".join(p.attrib["points"] for p in chart.iter("polyline"))
    assert "inf" not in coordinates and "nan" not in coordinates
    tips = [t.text for t in chart.iter("title")]
    assert tips[0] == "below 18: reference 25.0%, current 5.0%"  # drawn one bin wide, named open
    assert tips[1] == "[18, 40): reference 25.0%, current 15.0%"
    assert tips[-1] == "65 and above: reference 25.0%, current 50.0%"


def test_the_older_reference_form_of_plotting_data_is_accepted() -> None:
    feature = categorical("plan", True)
    feature["reference"] = feature.pop("distribution")
    page = render_monitoring_report(document(data_drift={"features": [feature]}))

    assert [r.attrib["class"] for r in svgs(page)["chart-feature-0"].iter("rect")].count(
        "bar-cur"
    ) == 3


def test_many_category_values_show_the_most_common_and_count_the_rest() -> None:
    values = [f"city-{i:02d}" for i in range(30)]
    page = render_monitoring_report(
        document(data_drift={"features": [categorical("city", True, values)]})
    )

    rects = [r.attrib["class"] for r in svgs(page)["chart-feature-0"].iter("rect")]
    assert rects.count("bar-cur") == 12
    assert "and 18 less common values" in page
    assert ">city-00<" in page  # the one value that grew to 70% is among those shown


def test_twenty_four_features_stay_one_row_and_one_chart_each() -> None:
    features = [numeric(f"num_{i:02d}", i % 5 == 0) for i in range(16)]
    features += [categorical(f"cat_{i:02d}", i % 4 == 0) for i in range(8)]
    page = render_monitoring_report(document(data_drift={"features": features, "share": 0.25}))

    rows = drift_rows(section(page, "data-drift"))
    assert len(rows) == 24
    flags = [drifted for _, drifted in rows]
    assert flags == sorted(flags, reverse=True) and sum(flags) == 6
    assert len([c for c in svgs(page) if c.startswith("chart-feature-")]) == 24


def test_model_quality_compares_labelled_metrics_with_the_release() -> None:
    part = section(render_monitoring_report(document()), "model-quality")

    assert "<b>120</b> labelled rows joined · 3 unknown labels · 1 ambiguous labels" in part
    assert "worse than the release&#x27;s by more than 0.0500" in part
    auc = re.search(r'<tr class="metric degraded"><th scope="row">roc_auc</th>(.*?)</tr>', part)
    assert auc and "<td>0.7100</td><td>0.8000</td><td>-0.0900</td>" in auc.group(1)
    assert "degraded" in auc.group(1)
    assert '<tr class="metric"><th scope="row">accuracy</th>' in part


def test_without_labels_the_prediction_distribution_is_shown_like_a_feature() -> None:
    prediction = numeric("prediction", True)
    page = render_monitoring_report(document(model_quality=None, prediction_drift=prediction))

    part = section(page, "model-quality")
    assert "No labels were joined to this window" in part
    assert drift_rows(part) == [("prediction", True)]
    assert "chart-prediction-0" in svgs(page)


def test_over_time_charts_the_share_and_each_metric_per_run() -> None:
    page = render_monitoring_report(document())
    charts = svgs(page)

    share = charts["chart-history-share"]
    assert len([c for c in share.iter("circle") if "v-" in c.attrib["class"]]) == 3
    assert [p for p in share.iter("path") if "no-value" in p.attrib.get("class", "")]  # no_data
    threshold = [p for p in share.iter("polyline") if p.attrib["class"] == "threshold"]
    assert len(threshold) == 1
    auc = charts["chart-history-metric-0"]
    assert auc.attrib["aria-label"] == "roc_auc per monitoring run"
    assert [p for p in auc.iter("polyline") if p.attrib["class"] == "release-line"]
    assert "11-26 10:00" in [t.text for t in share.iter("text")]


@pytest.mark.parametrize("entries", [0, 1])
def test_over_time_waits_for_a_second_run(entries: int) -> None:
    doc = document()
    doc["history"] = doc["history"][-entries:] if entries else []
    page = render_monitoring_report(doc)

    assert "chart-history" not in page
    assert "Charts over time appear from the second run." in section(page, "over-time")


def test_a_no_data_run_renders_its_messages_and_says_what_was_not_checked() -> None:
    doc = {
        "run": "2026-11-26T10-00-00Z-ab12cd",
        "endpoint": "lockgate-prod",
        "env": "prod",
        "release": None,
        "rows": 3,
        "verdict": "no_data",
        "messages": ["fewer than min_rows rows captured: 3 < 100"],
        "data_quality": None,
        "data_drift": None,
        "model_quality": None,
        "prediction_drift": None,
        "history": [],
    }
    page = render_monitoring_report(doc)

    assert ">No data</p>" in page
    assert "<li>fewer than min_rows rows captured: 3 &lt; 100</li>" in page
    assert "no release" in page
    assert "Data drift was not computed" in section(page, "data-drift")
    assert "Data quality was not checked" in section(page, "data-quality")
    assert "<svg" not in page


def test_an_empty_document_still_renders_a_page() -> None:
    page = render_monitoring_report({})

    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert 'data-verdict="unknown"' in page


def test_user_strings_are_escaped_everywhere() -> None:
    doc = document(endpoint=f"prod{SCRIPT}", messages=[f"bad row {SCRIPT}"])
    doc["data_drift"]["features"] = [
        numeric(SCRIPT, True),
        categorical("plan", True, ["basic", SCRIPT, 'a"b']),
    ]
    doc["data_quality"]["violations"][0]["description"] = SCRIPT
    page = render_monitoring_report(doc)

    assert "<script" not in page
    assert not re.search(r"<(?![a-zA-Z/!])", page)  # every other < starts a tag
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page
    assert drift_rows(section(page, "data-drift"))[0] == (SCRIPT, True)
    svgs(page)  # every chart still parses


def test_the_page_is_offline_and_holds_no_url() -> None:
    doc = document(messages=["see https://wiki.example.com/runbook"])
    doc["data_drift"]["features"] = [categorical("referrer", True, ["http://a.example", "b"])]
    page = render_monitoring_report(doc)

    assert "http://" not in page and "https://" not in page
    assert not re.search(r"\b(src|href)=\"(?!#)", page)  # only in-page links
    assert "<script" not in page and "@import" not in page and "url(" not in page
    assert "see https://wiki.example.com/runbook" in html.unescape(page)  # shown as written


def test_the_same_document_renders_the_same_bytes() -> None:
    doc = document()
    assert render_monitoring_report(doc) == render_monitoring_report(copy.deepcopy(doc))


def test_write_creates_the_folder_and_replaces_the_page(tmp_path: Path) -> None:
    target = tmp_path / "reports" / "run-1" / "report.html"
    target.parent.mkdir(parents=True)
    target.write_text("old page", encoding="utf-8")

    written = write_monitoring_report(document(), target)

    assert written == target
    assert target.read_text(encoding="utf-8") == render_monitoring_report(document())
    assert os.listdir(target.parent) == ["report.html"]
    fresh = write_monitoring_report(document(), tmp_path / "new" / "deeper" / "report.html")
    assert fresh.is_file()


def test_a_failed_write_leaves_the_previous_page_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "report.html"
    target.write_text("old page", encoding="utf-8")

    def refuse(src: object, dst: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(OSError, match="disk full"):
        write_monitoring_report(document(), target)

    assert target.read_text(encoding="utf-8") == "old page"
    assert os.listdir(tmp_path) == ["report.html"]  # no temporary file left behind
