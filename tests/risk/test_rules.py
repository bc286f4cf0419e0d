"""The sandbox KYC and the fraud rules of PRODUCT.md, at their boundaries."""

from __future__ import annotations

from datetime import date

import pytest

from risk.fraud import FraudRules, RiskContext
from risk.kyc import KycSubject, SandboxKyc, age_on

KYC = SandboxKyc(18, frozenset({"KP", "IR", "SY", "CU"}), frozenset({"Sanctioned Test Person"}))
RULES = FraudRules(
    deposit_limit_eur=50_000,
    review_threshold_eur=5_000,
    velocity_max_payments=30,
    blocked_countries=frozenset({"KP", "IR", "SY", "CU"}),
)
TODAY = date(2026, 11, 21)


@pytest.mark.parametrize(
    ("birth_date", "status"),
    [(date(2008, 11, 21), "approved"), (date(2008, 11, 22), "rejected")],
)
def test_kyc_rejects_under_18_to_the_day(birth_date: date, status: str) -> None:
    verdict = KYC.check(KycSubject("Ada Lovelace", birth_date, "DE"), TODAY)
    assert verdict.status == status
    assert verdict.failure_code == (None if status == "approved" else "kyc_rejected")


@pytest.mark.parametrize("country", ["KP", "IR", "SY", "CU"])
def test_kyc_rejects_blocked_countries(country: str) -> None:
    verdict = KYC.check(KycSubject("Ada Lovelace", date(1990, 1, 1), country), TODAY)
    assert (verdict.status, verdict.failure_code) == ("rejected", "kyc_rejected")


@pytest.mark.parametrize("name", ["Sanctioned Test Person", "  sanctioned   TEST person "])
def test_sanctions_screening_ignores_case_and_spacing(name: str) -> None:
    verdict = KYC.check(KycSubject(name, date(1990, 1, 1), "DE"), TODAY)
    assert (verdict.status, verdict.failure_code) == ("rejected", "sanctions_hit")
    assert KYC.screen(name, "US").failure_code == "sanctions_hit"
    assert KYC.screen("Grace Hopper", "IR").failure_code == "sanctions_hit"
    assert KYC.screen("Grace Hopper", "US").approved


def test_age_counts_completed_years() -> None:
    assert age_on(date(2000, 2, 29), date(2018, 2, 28)) == 17
    assert age_on(date(2000, 2, 29), date(2018, 3, 1)) == 18


@pytest.mark.parametrize(
    ("kind", "amount", "currency", "decision"),
    [
        ("deposit", 5_000_000, "EUR", "approve"),  # 50,000.00 EUR: the limit itself is allowed
        ("deposit", 5_000_001, "EUR", "decline"),
        ("deposit", 8_125_000, "JPY", "approve"),  # 162.5 JPY per EUR, exponent 0
        ("deposit", 8_125_001, "JPY", "decline"),
        ("deposit", 1_000_000, "KRW", "approve"),  # about 676 EUR
        ("deposit", 16_650_000, "KWD", "approve"),  # 0.333 KWD per EUR, exponent 3
        ("deposit", 16_650_001, "KWD", "decline"),
        ("withdrawal", 499_999, "EUR", "approve"),
        ("withdrawal", 500_000, "EUR", "review"),  # 5,000.00 EUR or more
        ("transfer", 5_000, "JPY", "approve"),  # about 31 EUR
        ("transfer", 812_499, "JPY", "approve"),
        ("transfer", 812_500, "JPY", "review"),
        ("transfer", 1_664_999, "KWD", "approve"),
        ("transfer", 1_665_000, "KWD", "review"),
        ("withdrawal", 4_999_000, "KWD", "review"),  # about 15,000 EUR
    ],
)
def test_amount_rules_are_in_euros_at_the_reference_rates(
    kind: str, amount: int, currency: str, decision: str
) -> None:
    assert RULES.assess(RiskContext(kind, amount, currency, "DE", 1)).decision == decision


def test_velocity_over_the_limit_declines_with_its_reason() -> None:
    at_limit = RULES.assess(RiskContext("deposit", 100, "EUR", "DE", 30))
    over = RULES.assess(RiskContext("withdrawal", 600_000, "EUR", "DE", 31))
    assert at_limit.decision == "approve"
    assert (over.decision, over.reasons) == ("decline", ["velocity_exceeded", "large_amount"])
