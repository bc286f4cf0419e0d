"""The OpenAPI document as a generated client reads it: verb operation ids, enums for every
closed vocabulary, metadata, and the same paging on every list; no model nothing answers."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from api.main import create_app
from api.problems import HTTP_CODES, PROBLEMS
from api.schemas import ProblemCode
from domain.payments import FailureCode as DomainFailureCode
from paysaga.settings import Settings

REPO_ROOT = Path(__file__).resolve().parents[2]
VERBS = {
    "accept", "block", "cancel", "create", "decode", "encode", "forfeit", "get", "grant",
    "list", "pay", "place", "receive", "redeliver", "resolve", "review", "revoke", "roll",
    "self", "set", "submit", "unblock", "update",
}  # fmt: skip
OPERATION_ID = re.compile(r"^[a-z]+(_[a-z0-9]+)+$")
# The game wallet's calls page by their booking sequence (its routes are the wallet's own).
UNPAGED_BACKWARDS = {"/v1/wallet/transactions"}


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    openapi: dict[str, Any] = create_app(Settings(environment="development")).openapi()
    return openapi


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, operation)
        for path, methods in document["paths"].items()
        for method, operation in methods.items()
    ]


def test_every_operation_id_is_a_unique_verb_object(document: dict[str, Any]) -> None:
    ids = [operation["operationId"] for _, _, operation in operations(document)]
    assert len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)
    for operation_id in ids:
        assert OPERATION_ID.match(operation_id), operation_id
        assert operation_id.split("_")[0] in VERBS, operation_id
    for expected in ("create_deposit", "get_payment", "list_payments", "create_customer"):
        assert expected in ids


def test_statuses_and_codes_are_enums(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    assert set(schemas["PaymentStatus"]["enum"]) == {
        "processing", "requires_action", "requires_review", "requires_intervention",
        "succeeded", "failed", "canceled",
    }  # fmt: skip
    assert set(schemas["PaymentKind"]["enum"]) == {"deposit", "withdrawal", "transfer"}
    failure_codes = set(schemas["FailureCode"]["enum"])
    # PRODUCT.md's list, and every code a saga writes.
    assert {
        "kyc_rejected", "sanctions_hit", "risk_declined", "provider_declined",
        "provider_rejected", "provider_unavailable", "insufficient_funds", "review_rejected",
        "quote_expired", "customer_blocked", "customer_in_debt", "resolved_by_operator",
        "authentication_failed", "authentication_abandoned", "deposit_limit_exceeded",
        "customer_self_excluded",
    } <= failure_codes  # fmt: skip
    assert {code.value for code in DomainFailureCode} <= failure_codes
    payment = schemas["Payment"]["properties"]
    assert payment["status"] == {"$ref": "#/components/schemas/PaymentStatus"}
    assert {"$ref": "#/components/schemas/FailureCode"} in payment["failure_code"]["anyOf"]
    refund = schemas["Refund"]["properties"]
    assert set(refund["status"]["enum"]) >= {"processing", "succeeded", "failed"}
    assert {"$ref": "#/components/schemas/FailureCode"} in refund["failure_code"]["anyOf"]
    assert set(schemas["Dispute"]["properties"]["status"]["enum"]) >= {"won", "lost"}
    assert set(schemas["Customer"]["properties"]["kyc_status"]["enum"]) == {
        "pending", "approved", "rejected",
    }  # fmt: skip
    assert set(schemas["Problem"]["properties"]["code"]["enum"]) == {c.value for c in ProblemCode}


def test_every_problem_code_answered_is_in_the_enum(document: dict[str, Any]) -> None:
    codes = {code.value for code in ProblemCode}
    assert {problem.code for problem in PROBLEMS.values()} <= codes
    assert set(HTTP_CODES.values()) <= codes
    for path, method, operation in operations(document):
        for status, response in operation["responses"].items():
            content = response.get("content", {}).get("application/problem+json")
            if content is not None:
                listed = set(content["schema"]["properties"]["code"]["examples"])
                assert listed <= codes, (method, path, status, listed - codes)
    # Every code a raiser names in the source (`code="..."`, `code = "..."`).
    written = set()
    for folder in ("api", "domain", "fx", "wallet", "paysaga", "providers", "activities"):
        for source in (REPO_ROOT / folder).rglob("*.py"):
            written |= set(re.findall(r"\bcode ?= ?\"([a-z_]+)\"", source.read_text()))
    assert written <= codes, written - codes


def test_fastapis_validation_models_are_gone(document: dict[str, Any]) -> None:
    assert "HTTPValidationError" not in document["components"]["schemas"]
    assert "ValidationError" not in document["components"]["schemas"]
    text = json.dumps(document)
    assert "HTTPValidationError" not in text and "#/components/schemas/ValidationError" not in text


def test_customers_and_payments_carry_metadata(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    for body in ("CustomerCreate", "DepositCreate", "WithdrawalCreate", "TransferCreate"):
        metadata = schemas[body]["properties"]["metadata"]
        assert metadata["maxProperties"] == 50
        assert metadata["propertyNames"]["maxLength"] == 40
        assert metadata["additionalProperties"]["maxLength"] == 500
    for answer in ("Customer", "Payment"):
        assert schemas[answer]["properties"]["metadata"]["type"] == "object"
    for path in ("/v1/payments", "/v1/customers"):
        names = {p["name"]: p for p in document["paths"][path]["get"]["parameters"]}
        assert names["metadata"]["style"] == "deepObject"


def test_every_list_pages_both_ways_and_by_creation(document: dict[str, Any]) -> None:
    checked = set()
    for path, _, operation in operations(document):
        names = {p["name"] for p in operation.get("parameters", [])}
        if "starting_after" not in names or path in UNPAGED_BACKWARDS:
            continue
        assert {"ending_before", "created[gte]", "created[lte]", "limit"} <= names, path
        checked.add(path)
    assert {
        "/v1/payments", "/v1/customers", "/v1/disputes", "/v1/payments/{payment_id}/refunds",
        "/v1/merchant/api-keys", "/v1/merchants/{merchant_id}/api-keys", "/v1/ops/audit-log",
        "/v1/ops/notifications/dead-letters", "/v1/ops/reconciliation/mismatches",
    } <= checked  # fmt: skip
