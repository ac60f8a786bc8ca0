"""A seeded generator of realistic customer-churn data, used by ``lockgate demo`` and by tests.

Each row is one customer of a telecom provider on the day ``start`` (default 2026-01-01 UTC).
The same arguments always give the same table (and byte-identical CSV): every column draws from
its own stream of a :class:`numpy.random.SeedSequence`, so the data does not depend on the order
in which columns are built, and changing ``shift`` drifts the *same* customers instead of drawing
new ones.

Columns (kinds as in :data:`CHURN_COLUMNS`):

- ``customer_id`` (id): ``"C<seed>-<7 digits>"``, numbered in signup order, so ids are unique
  within a table and never collide between tables generated with different seeds.
- ``signup_date`` (datetime, UTC, seconds): up to three years before ``start``.
- ``tenure_months`` (numeric, int): whole months between ``signup_date`` and ``start`` (0-35).
- ``monthly_charges`` (numeric, float): set by plan (basic ~29, standard ~54, premium ~84,
  family ~104), a discount for one-/two-year contracts, and noise; about 2% are null (missing in
  the billing export), though the customer's real charge still drives ``total_charges`` and churn.
- ``total_charges`` (numeric, float): ``(tenure + part of the current month) * monthly`` with 3%
  noise.
- ``support_calls`` (numeric, int): Poisson; new customers (tenure < 6) and family plans call
  more.
- ``plan`` (categorical): basic / standard / premium / family.
- ``payment_method`` (categorical): credit-card / bank-transfer / electronic-check and the rare
  (0.5%) mailed-check.
- ``region`` (categorical): eight regions, skewed from metro-north (27%) to islands (2.5%).
- ``contract`` (categorical): month-to-month / one-year / two-year.
- ``last_ticket_text`` (text): the customer's last support ticket, e.g. ``"hi, internet keeps
  dropping at night again"``, built from an opener, a phrase of one of seven topics (billing,
  connectivity, speed, cancel, device, account, outage) and a suffix. Null for customers with
  no support calls. Customers with more calls more often write about cancelling, dropping
  connections and billing errors.
- ``churned`` (target, int 0/1): drawn from a logistic model whose log-odds are::

      -1.45 + 1.1 * month_to_month - 0.8 * two_year - 0.055 * tenure_months
            + b_calls * support_calls + b_price * (monthly_charges - 65) / 20
            + 0.35 * electronic_check + text_score

  where ``text_score`` adds 1.4 for "cancel", 0.8 for "dropping"/"drops", 0.6 for "error",
  0.4 for "slow", 0.5 for "outage" and 0.3 for "again" when the ticket contains the word.
  At ``shift=0`` about a quarter of customers churn and a logistic regression on the columns
  reaches a held-out ROC AUC around 0.8.

``shift`` (0 to 1) is the drift knob for monitoring demos. Every effect below is linear in
``shift``; ``shift=0`` is the baseline and ``shift=1`` the strongest drift:

- Covariate drift, numeric: ``monthly_charges`` rise by ``18 * shift`` (a price increase);
  the support-call rate is multiplied by ``1 + 0.9 * shift``; signups move towards ``start``
  (signup age is ``1095 days * u ** (1.3 + 1.2 * shift)`` for uniform ``u``), so tenure is
  shorter and ``total_charges`` smaller.
- Covariate drift, categorical: month-to-month contracts go from 48% to ``48% + 27% * shift``
  (the other two keep their ratio); ``35% * shift`` of customers move to region "desert"
  (4.5% at baseline, about 38% at ``shift=1``). Plan and payment method do not drift.
- Text drift: ``60% * shift`` of tickets switch to a drifted topic mix dominated by
  connectivity, speed and outage tickets (outages are rare at baseline).
- Concept drift: ``b_calls`` falls from 0.30 to ``0.30 - 0.12 * shift`` and ``b_price`` rises
  from 0.45 to ``0.45 + 0.40 * shift``: customers become more price-sensitive and less
  bothered by support calls. The other coefficients do not change.

Because drift raises charges, calls and month-to-month contracts, the churn rate also rises with
``shift`` (to roughly half the customers at ``shift=1``).
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

CHURN_TARGET = "churned"
"""Name of the binary target column (int 0/1)."""

CHURN_COLUMNS: dict[str, str] = {
    "customer_id": "id",
    "signup_date": "datetime",
    "tenure_months": "numeric",
    "monthly_charges": "numeric",
    "total_charges": "numeric",
    "support_calls": "numeric",
    "plan": "categorical",
    "payment_method": "categorical",
    "region": "categorical",
    "contract": "categorical",
    "last_ticket_text": "text",
}
"""Every non-target column of :func:`generate_churn`, mapped to its kind."""

DEFAULT_START = datetime(2026, 1, 1, tzinfo=UTC)

_DAYS_OF_HISTORY = 3 * 365
_DAYS_PER_MONTH = 365.25 / 12

_PLANS = ("basic", "standard", "premium", "family")
_PLAN_SHARE = (0.35, 0.35, 0.18, 0.12)
_PLAN_CHARGE = np.array([29.0, 54.0, 84.0, 104.0])

_CONTRACTS = ("month-to-month", "one-year", "two-year")
_CONTRACT_SHARE = (0.48, 0.27, 0.25)
_CONTRACT_DISCOUNT = np.array([0.0, 3.0, 6.0])

_PAYMENTS = ("credit-card", "bank-transfer", "electronic-check", "mailed-check")
_PAYMENT_SHARE = (0.42, 0.30, 0.275, 0.005)

_REGIONS = (
    "metro-north",
    "metro-south",
    "coastal",
    "valley",
    "lakeside",
    "highlands",
    "desert",
    "islands",
)
_REGION_SHARE = (0.27, 0.21, 0.16, 0.12, 0.10, 0.07, 0.045, 0.025)
_SURGE_REGION = _REGIONS.index("desert")

# Ticket topics: phrases, then the topic mix of calm customers, of customers who call often,
# and the mix that drift moves towards. Order: billing, connectivity, speed, cancel, device,
# account, outage.
_TOPIC_PHRASES: tuple[tuple[str, ...], ...] = (
    (
        "billing error on my invoice",
        "charged twice for the same month",
        "wrong amount on my bill",
        "refund still has not arrived",
        "late fee added by error",
        "autopay failed with an error",
    ),
    (
        "internet keeps dropping at night",
        "connection keeps dropping during calls",
        "wifi drops every few minutes",
        "signal dropping in the kitchen",
        "line goes dead when it rains",
    ),
    (
        "download speed is very slow",
        "video keeps buffering in the evening",
        "upload is slow and much lower than promised",
        "games lag every evening",
    ),
    (
        "i want to cancel my contract",
        "how do i cancel my plan",
        "please cancel the extra line",
        "thinking about cancelling and switching provider",
        "cancel my subscription at the end of the month",
    ),
    (
        "router lights blinking red",
        "need a replacement modem",
        "tv box will not turn on",
        "new phone will not activate",
    ),
    (
        "how do i change my password",
        "please update my postal address",
        "question about upgrading to the family plan",
        "thanks for the quick fix",
        "can i add another user to my account",
    ),
    (
        "outage in my area for two days",
        "service down after the storm",
        "another outage since the tower work",
        "whole street lost service",
    ),
)
_TOPIC_MIX_CALM = np.array([0.20, 0.14, 0.12, 0.03, 0.16, 0.33, 0.02])
_TOPIC_MIX_ANGRY = np.array([0.22, 0.22, 0.12, 0.25, 0.08, 0.06, 0.05])
_TOPIC_MIX_DRIFT = np.array([0.10, 0.25, 0.25, 0.05, 0.05, 0.05, 0.25])

_OPENERS = ("", "hi, ", "hello, ", "urgent: ", "please help: ")
_OPENER_SHARE = (0.55, 0.15, 0.10, 0.10, 0.10)
_SUFFIXES = ("", " again", " since last week", " for the third time", " this month")
_SUFFIX_SHARE = (0.45, 0.20, 0.15, 0.10, 0.10)

# Words in a ticket that raise the log-odds of churn (substring match, so "cancel" also
# counts "cancelling").
_COMPLAINT_WORDS = {
    "cancel": 1.4,
    "dropping": 0.8,
    "drops": 0.8,
    "error": 0.6,
    "slow": 0.4,
    "outage": 0.5,
    "again": 0.3,
}

# Each column draws from its own child stream; append new names at the end so existing
# columns keep their values.
_STREAMS = (
    "signup",
    "plan",
    "contract",
    "payment",
    "region",
    "charges",
    "charges_missing",
    "total",
    "calls",
    "topic",
    "phrase",
    "opener",
    "suffix",
    "churn",
)

_Floats = npt.NDArray[np.float64]
_Ints = npt.NDArray[np.int64]


def generate_churn(
    rows: int,
    *,
    seed: int = 7,
    shift: float = 0.0,
    start: datetime | None = None,
) -> pa.Table:
    """Generate a customer-churn table.

    Args:
        rows: Number of customers (rows), at least 1.
        seed: Non-negative seed; the same arguments always give the same table, and tables
            from different seeds have disjoint ``customer_id`` values.
        shift: Drift between 0 (baseline) and 1 (strongest); see the module docstring for
            exactly what it changes.
        start: The "as of" moment; signups lie up to three years before it. A naive datetime
            is taken as UTC. Defaults to 2026-01-01 00:00 UTC.

    Returns:
        A table with the columns of :data:`CHURN_COLUMNS` followed by ``churned`` (int64 0/1).

    Raises:
        ValueError: If ``rows`` < 1, ``seed`` < 0 or ``shift`` is outside [0, 1].
    """
    if rows < 1:
        raise ValueError(f"rows must be at least 1, got {rows}")
    if seed < 0:
        raise ValueError(f"seed must be non-negative, got {seed}")
    if not 0.0 <= shift <= 1.0:
        raise ValueError(f"shift must be between 0 and 1, got {shift}")
    as_of = DEFAULT_START if start is None else start
    if as_of.tzinfo is None:
        as_of = as_of.replace(tzinfo=UTC)

    children = np.random.SeedSequence(seed).spawn(len(_STREAMS))
    rng = {
        name: np.random.default_rng(child) for name, child in zip(_STREAMS, children, strict=True)
    }

    # Signup age in seconds; drift raises the exponent, pulling signups towards `as_of`.
    age_days = _DAYS_OF_HISTORY * rng["signup"].random(rows) ** (1.3 + 1.2 * shift)
    age_seconds = np.floor(age_days * 86_400).astype(np.int64)
    tenure = np.floor(age_days / _DAYS_PER_MONTH).astype(np.int64)
    signup_seconds = int(as_of.timestamp()) - age_seconds

    plan = _draw(rng["plan"], np.array(_PLAN_SHARE), rows)
    m2m_share = _CONTRACT_SHARE[0] + 0.27 * shift
    rest = np.array(_CONTRACT_SHARE[1:]) / sum(_CONTRACT_SHARE[1:]) * (1.0 - m2m_share)
    contract = _draw(rng["contract"], np.concatenate([[m2m_share], rest]), rows)
    payment = _draw(rng["payment"], np.array(_PAYMENT_SHARE), rows)
    region_share = (1.0 - 0.35 * shift) * np.array(_REGION_SHARE)
    region_share[_SURGE_REGION] += 0.35 * shift
    region = _draw(rng["region"], region_share, rows)

    charges = (
        _PLAN_CHARGE[plan]
        - _CONTRACT_DISCOUNT[contract]
        + rng["charges"].normal(0.0, 7.0, rows)
        + 18.0 * shift
    )
    charges = np.round(np.maximum(charges, 15.0), 2)
    charges_missing = rng["charges_missing"].random(rows) < 0.02
    months_billed = tenure + rng["total"].random(rows)
    total = months_billed * charges * (1.0 + rng["total"].normal(0.0, 0.03, rows))
    total = np.round(np.maximum(total, 0.0), 2)

    call_rate = (1.0 + 0.6 * (tenure < 6) + 0.3 * (plan == _PLANS.index("family"))) * (
        1.0 + 0.9 * shift
    )
    calls = rng["calls"].poisson(call_rate).astype(np.int64)

    text, text_score = _tickets(rng, calls, shift)

    b_calls = 0.30 - 0.12 * shift
    b_price = 0.45 + 0.40 * shift
    log_odds = (
        -1.45
        + 1.1 * (contract == _CONTRACTS.index("month-to-month"))
        - 0.8 * (contract == _CONTRACTS.index("two-year"))
        - 0.055 * tenure
        + b_calls * calls
        + b_price * (charges - 65.0) / 20.0
        + 0.35 * (payment == _PAYMENTS.index("electronic-check"))
        + text_score
    )
    churned = (rng["churn"].random(rows) < 1.0 / (1.0 + np.exp(-log_odds))).astype(np.int64)

    # Customer numbers follow signup order, as a billing system would assign them.
    number = np.empty(rows, dtype=np.int64)
    number[np.argsort(-age_seconds, kind="stable")] = np.arange(1, rows + 1, dtype=np.int64)
    digits = pc.utf8_lpad(pa.array(number).cast(pa.string()), width=7, padding="0")

    return pa.table(
        {
            "customer_id": pc.binary_join_element_wise(f"C{seed}-", digits, ""),
            "signup_date": pa.array(signup_seconds, type=pa.timestamp("s", tz="UTC")),
            "tenure_months": pa.array(tenure),
            "monthly_charges": pa.array(charges, mask=charges_missing),
            "total_charges": pa.array(total),
            "support_calls": pa.array(calls),
            "plan": _labels(_PLANS, plan),
            "payment_method": _labels(_PAYMENTS, payment),
            "region": _labels(_REGIONS, region),
            "contract": _labels(_CONTRACTS, contract),
            "last_ticket_text": text,
            CHURN_TARGET: pa.array(churned),
        }
    )


def write_churn_csv(
    path: str | os.PathLike[str],
    rows: int,
    *,
    seed: int = 7,
    shift: float = 0.0,
    gzip: bool = False,
    start: datetime | None = None,
) -> Path:
    """Write :func:`generate_churn` output as CSV (header row, UTF-8).

    Args:
        path: Destination file; missing parent folders are created. The name is used as
            given (add ``.csv.gz`` yourself when ``gzip`` is true).
        rows: Number of customers, at least 1.
        seed: As for :func:`generate_churn`.
        shift: As for :func:`generate_churn`.
        gzip: Compress the file with gzip.
        start: As for :func:`generate_churn`.

    Returns:
        The path written. The same arguments always write the same bytes.

    Raises:
        ValueError: As for :func:`generate_churn`.
    """
    table = generate_churn(rows, seed=seed, shift=shift, start=start)
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    if gzip:
        with pa.CompressedOutputStream(str(target), "gzip") as sink:
            pacsv.write_csv(table, sink)
    else:
        pacsv.write_csv(table, str(target))
    return target


def _draw(rng: np.random.Generator, share: _Floats, rows: int) -> _Ints:
    """Draw category indices with the given shares by inverting their cumulative sum."""
    cumulative = np.cumsum(share) / np.sum(share)
    index = np.searchsorted(cumulative, rng.random(rows), side="right")
    return np.minimum(index, len(share) - 1).astype(np.int64)


def _labels(names: tuple[str, ...], index: _Ints) -> pa.Array:
    """Turn category indices into a string array."""
    return pa.array(names, type=pa.string()).take(pa.array(index))


def _word_score(text: str) -> float:
    """Sum the churn weight of every complaint word in ``text``."""
    return sum(weight for word, weight in _COMPLAINT_WORDS.items() if word in text)


def _tickets(
    rng: dict[str, np.random.Generator], calls: _Ints, shift: float
) -> tuple[pa.Array, _Floats]:
    """Build the last ticket's text per customer and its churn score (0 where no ticket)."""
    rows = len(calls)
    # Frequent callers write more angry tickets; drift moves part of everyone's mix.
    angry = np.clip(0.12 * (calls - 1), 0.0, 0.75)[:, None]
    mix = (1.0 - angry) * _TOPIC_MIX_CALM + angry * _TOPIC_MIX_ANGRY
    mix = (1.0 - 0.6 * shift) * mix + 0.6 * shift * _TOPIC_MIX_DRIFT
    cumulative = np.cumsum(mix, axis=1)
    topic = (rng["topic"].random(rows)[:, None] > cumulative).sum(axis=1)
    topic = np.minimum(topic, len(_TOPIC_PHRASES) - 1)

    sizes = np.array([len(phrases) for phrases in _TOPIC_PHRASES])
    first = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    phrase = first[topic] + np.floor(rng["phrase"].random(rows) * sizes[topic]).astype(np.int64)
    phrases = tuple(p for topic_phrases in _TOPIC_PHRASES for p in topic_phrases)
    opener = _draw(rng["opener"], np.array(_OPENER_SHARE), rows)
    suffix = _draw(rng["suffix"], np.array(_SUFFIX_SHARE), rows)

    text = pc.binary_join_element_wise(
        _labels(_OPENERS, opener), _labels(phrases, phrase), _labels(_SUFFIXES, suffix), ""
    )
    has_ticket = calls > 0
    text = pc.if_else(pa.array(has_ticket), text, pa.scalar(None, type=pa.string()))

    phrase_score = np.array([_word_score(p) for p in phrases])
    opener_score = np.array([_word_score(o) for o in _OPENERS])
    suffix_score = np.array([_word_score(s) for s in _SUFFIXES])
    score = phrase_score[phrase] + opener_score[opener] + suffix_score[suffix]
    return text, np.where(has_ticket, score, 0.0)
