"""KYC and sanctions screening behind a provider interface, with the sandbox rules of PRODUCT.md."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Protocol


@dataclass(frozen=True)
class KycSubject:
    """The person to check."""

    full_name: str
    birth_date: date
    country: str


@dataclass(frozen=True)
class KycVerdict:
    """`approved`, or `rejected` with the failure code (`kyc_rejected` or `sanctions_hit`)."""

    status: str
    failure_code: str | None = None
    reason: str | None = None

    @property
    def approved(self) -> bool:
        return self.status == "approved"


class KycProvider(Protocol):
    """A KYC vendor: identity, age and country checks plus sanctions screening."""

    def check(self, subject: KycSubject, today: date) -> KycVerdict: ...

    def screen(self, name: str, country: str) -> KycVerdict: ...


def normalize_name(name: str) -> str:
    """Names compared case- and space-insensitively, as screening lists are."""
    return " ".join(name.casefold().split())


@dataclass(frozen=True)
class SandboxKyc:
    """The sandbox rules: minimum age, blocked countries, a sanctions list of names."""

    minimum_age: int
    blocked_countries: frozenset[str]
    sanctions_list: frozenset[str]

    def check(self, subject: KycSubject, today: date) -> KycVerdict:
        if self.is_sanctioned(subject.full_name):
            return KycVerdict("rejected", "sanctions_hit", "name on the sanctions list")
        if subject.country.upper() in self.blocked_countries:
            return KycVerdict("rejected", "kyc_rejected", f"country {subject.country} is blocked")
        if age_on(subject.birth_date, today) < self.minimum_age:
            return KycVerdict("rejected", "kyc_rejected", f"under {self.minimum_age}")
        return KycVerdict("approved")

    def screen(self, name: str, country: str) -> KycVerdict:
        """Sanctions screening of a counterparty (a transfer's beneficiary): name and country."""
        if self.is_sanctioned(name):
            return KycVerdict("rejected", "sanctions_hit", "beneficiary on the sanctions list")
        if country.upper() in self.blocked_countries:
            return KycVerdict(
                "rejected", "sanctions_hit", f"beneficiary country {country} is blocked"
            )
        return KycVerdict("approved")

    def is_sanctioned(self, full_name: str) -> bool:
        return normalize_name(full_name) in {normalize_name(n) for n in self.sanctions_list}


def age_on(birth_date: date, today: date) -> int:
    """Completed years of age on `today`."""
    before_birthday = (today.month, today.day) < (birth_date.month, birth_date.day)
    return today.year - birth_date.year - int(before_birthday)
