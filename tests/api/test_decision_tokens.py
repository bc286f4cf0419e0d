"""Money decisions sent straight to Temporal do not count: only those the API signed do.

Whoever reaches Temporal could otherwise approve a review or resolve a payment without the ops
scope and the audit log, or fake a provider's webhook without its HMAC.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer

from activities.decision_guard import DecisionGuard
from devtools.stack import free_port
from domain.bonuses import ForfeitRequest
from domain.disputes import WORKFLOW_NAME as DISPUTE_WORKFLOW_NAME
from domain.disputes import DisputeAnswer, DisputeEventSignal, DisputeInput, dispute_id_for
from domain.payments import (
    ProviderEventSignal,
    ResolveDecision,
    ReviewDecision,
    SagaTimings,
)
from paysaga.codec import data_converter
from paysaga.settings import DEV_OPS_KEY, DEV_PSP_WEBHOOK_SECRETS, Settings
from sandbox_psp.signing import SIGNATURE_HEADER, signature_header
from tests.api.test_disputes import deposit_of, dispute_of, plant
from tests.stack import (
    Service,
    Stack,
    balance_of,
    create_customer,
    funded_customer,
    post_payment,
    wait_status,
    wait_terminal,
)
from worker import WORKFLOWS

pytestmark = pytest.mark.asyncio(loop_scope="session")

FORGED_TOKEN = "0" * 64  # the shape of a real token, signed by no key of ours


def forged(decision: Any) -> dict[str, Any]:
    """The decision with a token no key of ours made."""
    return {**dataclasses.asdict(decision), "token": FORGED_TOKEN}


@pytest.fixture
async def temporal(temporal_env: WorkflowEnvironment) -> Client:
    """A client of the stack's Temporal that even holds the codec key: tokens still stop it."""
    return await Client.connect(
        temporal_env.client.service_client.config.target_host,
        namespace=temporal_env.client.namespace,
        data_converter=data_converter(Settings()),
    )


async def signal_handled(client: Client, workflow_id: str, signal_name: str) -> None:
    """Wait until a workflow task has completed after the workflow's last `signal_name`."""
    handle = client.get_workflow_handle(workflow_id)
    while True:
        events = (await handle.fetch_history()).events
        signaled = [
            n
            for n, event in enumerate(events)
            if event.HasField("workflow_execution_signaled_event_attributes")
            and event.workflow_execution_signaled_event_attributes.signal_name == signal_name
        ]
        if signaled and any(
            event.HasField("workflow_task_completed_event_attributes")
            for event in events[signaled[-1] :]
        ):
            return
        await asyncio.sleep(0.05)


async def replay_with_other_keys(temporal: Client, workflow_id: str) -> None:
    """Replay the saga's history on a worker whose keys have all rotated since: verdicts on its
    decisions are in the history, so the replay needs none of the keys that made them."""
    history = await temporal.get_workflow_handle(workflow_id).fetch_history()
    rotated = DecisionGuard(["a key made after every decision of this saga" + "!" * 8])
    replayer = Replayer(
        workflows=WORKFLOWS, interceptors=[rotated], data_converter=temporal.data_converter
    )
    await replayer.replay_workflow(history)


async def announced(api: httpx.AsyncClient, event_type: str, object_id: str) -> None:
    """Wait until the event feed holds an event of this type about the object."""
    after = 0
    while True:
        params: dict[str, str | int] = {"type": event_type, "limit": 100, "after": after}
        page = (await api.get("/v1/events", params=params)).json()
        if any(e["data"]["object"].get("id") == object_id for e in page["data"]):
            return
        if page["data"]:
            after = page["data"][-1]["sequence"]
        if not page["has_more"]:
            await asyncio.sleep(0.05)


async def deposit(api: httpx.AsyncClient, customer_id: str, amount: int, method: str) -> str:
    body = {"customer_id": customer_id, "amount": amount, "currency": "EUR"}
    response = await post_payment(api, "/v1/deposits", {**body, "payment_method": method})
    assert response.status_code == 202, response.text
    payment_id: str = response.json()["id"]
    return payment_id


async def test_review_sent_straight_to_temporal_is_refused(
    api: httpx.AsyncClient, ops_api: httpx.AsyncClient, temporal: Client
) -> None:
    customer = await funded_customer(api, 600_000)
    body = {"customer_id": customer["id"], "amount": 500_000, "currency": "EUR"}
    created = await post_payment(api, "/v1/withdrawals", {**body, "destination": "pm_ok"})
    assert created.status_code == 202, created.text
    payment_id = created.json()["id"]
    await wait_status(api, payment_id, {"requires_review"})
    saga = temporal.get_workflow_handle(payment_id)
    approval = ReviewDecision("approve", "straight to Temporal", reviewer="key_nobody")

    with pytest.raises(WorkflowUpdateFailedError):
        await saga.execute_update("review", approval)
    with pytest.raises(WorkflowUpdateFailedError):
        await saga.execute_update("review", forged(approval))
    still = await api.get(f"/v1/payments/{payment_id}")
    reviewed = await ops_api.post(
        f"/v1/payments/{payment_id}/review", json={"decision": "approve", "reason": "checked"}
    )

    assert still.json()["status"] == "requires_review"
    assert reviewed.status_code == 200, reviewed.text
    assert (await wait_terminal(api, payment_id))["status"] == "succeeded"
    await replay_with_other_keys(temporal, payment_id)


async def test_resolve_sent_straight_to_temporal_is_refused(
    api: httpx.AsyncClient, ops_api: httpx.AsyncClient, temporal: Client
) -> None:
    customer = await create_customer(api)
    payment_id = await deposit(api, customer["id"], 2_500, "pm_pending_forever")
    await wait_status(api, payment_id, {"requires_intervention"}, timeout=30)
    saga = temporal.get_workflow_handle(payment_id)
    resolution = ResolveDecision("succeeded", "straight to Temporal", operator="key_nobody")

    with pytest.raises(WorkflowUpdateFailedError):
        await saga.execute_update("resolve", resolution)
    with pytest.raises(WorkflowUpdateFailedError):
        await saga.execute_update("resolve", forged(resolution))
    still = await api.get(f"/v1/payments/{payment_id}")
    untouched = await balance_of(api, customer["id"], "EUR")
    resolved = await ops_api.post(
        f"/v1/payments/{payment_id}/resolve",
        json={"outcome": "succeeded", "reason": "the provider's dashboard shows it paid"},
    )

    assert still.json()["status"] == "requires_intervention"
    assert untouched["posted"] == 0
    assert resolved.status_code == 200, resolved.text
    assert resolved.json()["status"] == "succeeded"
    assert (await balance_of(api, customer["id"], "EUR"))["posted"] == 2_500


async def test_provider_event_signalled_straight_to_temporal_changes_nothing(
    api: httpx.AsyncClient, temporal: Client
) -> None:
    """A charge the provider still has pending: a faked `succeeded` event is ignored, unsigned
    or forged; the provider's own signed webhook, through the API, is taken."""
    customer = await create_customer(api)
    payment_id = await deposit(api, customer["id"], 2_500, "pm_pending_forever")
    await wait_status(api, payment_id, {"requires_intervention"}, timeout=30)
    saga = temporal.get_workflow_handle(payment_id)
    paid = ProviderEventSignal(
        event_id="evt_forged",
        provider="sandbox-cards",
        operation_kind="charge",
        idempotency_key=f"{payment_id}:charge",
        status="succeeded",
        sequence=99,
        amount=2_500,
        currency="EUR",
    )

    await saga.signal("provider_event", paid)
    await signal_handled(temporal, payment_id, "provider_event")
    unsigned_taken = await api.get(f"/v1/payments/{payment_id}")
    assert unsigned_taken.json()["status"] == "requires_intervention"
    await saga.signal("provider_event", forged(dataclasses.replace(paid, event_id="evt_forged_2")))
    await signal_handled(temporal, payment_id, "provider_event")
    still = await api.get(f"/v1/payments/{payment_id}")
    untouched = await balance_of(api, customer["id"], "EUR")
    webhook = await signed_webhook(api, paid, reference=payment_id)

    assert still.json()["status"] == "requires_intervention"
    assert untouched["posted"] == 0
    assert webhook.status_code == 200, webhook.text
    assert (await wait_terminal(api, payment_id))["status"] == "succeeded"
    assert (await balance_of(api, customer["id"], "EUR"))["posted"] == 2_500
    await replay_with_other_keys(temporal, payment_id)


async def signed_webhook(
    api: httpx.AsyncClient, event: ProviderEventSignal, *, reference: str
) -> httpx.Response:
    """The provider's own webhook of the event, signed with its secret, posted to the API."""
    body = {
        "id": f"evt_{uuid.uuid4().hex}",
        "type": f"{event.operation_kind}.{event.status}",
        "created": int(time.time()),
        "sequence": event.sequence,
        "data": {
            "operation": {
                "id": "ch_from_the_provider",
                "kind": event.operation_kind,
                "provider": event.provider,
                "idempotency_key": event.idempotency_key,
                "reference": reference,
                "amount": event.amount,
                "currency": event.currency,
                "status": event.status,
                "decline_code": None,
            }
        },
    }
    content = json.dumps(body).encode()
    secret = DEV_PSP_WEBHOOK_SECRETS[event.provider]
    headers = {SIGNATURE_HEADER: signature_header(secret, content, int(time.time()))}
    return await api.post(
        f"/v1/webhooks/providers/{event.provider}", content=content, headers=headers
    )


async def test_forfeit_sent_straight_to_temporal_is_refused(
    api: httpx.AsyncClient, ops_api: httpx.AsyncClient, temporal: Client
) -> None:
    customer = await create_customer(api)
    grant = {"amount": 500, "currency": "EUR", "wagering_multiplier": 10}
    granted = await post_payment(
        api, f"/v1/customers/{customer['id']}/bonuses", {**grant, "expires_in_seconds": 3600}
    )
    assert granted.status_code == 201, granted.text
    bonus_id = granted.json()["id"]
    bonus = temporal.get_workflow_handle(bonus_id)

    with pytest.raises(WorkflowUpdateFailedError):
        await bonus.execute_update("forfeit", ForfeitRequest("straight to Temporal", "key_nobody"))
    with pytest.raises(WorkflowUpdateFailedError):
        await bonus.execute_update("forfeit", forged(ForfeitRequest("forged", "key_nobody")))
    still = await api.get(f"/v1/bonuses/{bonus_id}")
    forfeited = await ops_api.post(f"/v1/bonuses/{bonus_id}/forfeit", json={"reason": "abuse"})

    assert still.json()["status"] == "active"
    assert forfeited.status_code == 200, forfeited.text
    assert forfeited.json()["status"] == "forfeited"


async def test_dispute_answer_sent_straight_to_temporal_is_refused(
    api: httpx.AsyncClient, ops_api: httpx.AsyncClient, stack: Stack, temporal: Client
) -> None:
    payment = await deposit_of(api, 3_000)
    await plant(stack, payment, 3_000, "won")
    dispute = await dispute_of(api, payment["id"])
    await announced(api, "dispute.created", dispute["id"])  # withdrawn: its answer is awaited
    saga = temporal.get_workflow_handle(dispute["id"])
    acceptance = DisputeAnswer("accept", operator="key_nobody")

    with pytest.raises(WorkflowUpdateFailedError):
        await saga.execute_update("respond", acceptance)
    with pytest.raises(WorkflowUpdateFailedError):
        await saga.execute_update("respond", forged(acceptance))
    still = await api.get(f"/v1/disputes/{dispute['id']}")
    accepted = await ops_api.post(f"/v1/disputes/{dispute['id']}/accept")

    assert still.json()["status"] == "needs_response"
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["status"] == "lost"


async def test_dispute_event_signalled_straight_to_temporal_opens_nothing(
    api: httpx.AsyncClient, stack: Stack, temporal: Client
) -> None:
    """A chargeback the provider never reported, started with its event by whoever reaches
    Temporal: nothing is recorded or withdrawn."""
    payment = await deposit_of(api, 3_000)
    provider = payment["provider"]
    dispute_id = dispute_id_for(provider, f"dp_forged_{uuid.uuid4().hex}")
    facts = DisputeInput(
        dispute_id,
        "mer_dev",
        payment["id"],
        payment["customer_id"],
        "EUR",
        provider,
        dispute_id,
        "house",
        SagaTimings(),
    )
    event = DisputeEventSignal(
        "evt_forged",
        "dispute.created",
        1,
        "needs_response",
        3_000,
        "EUR",
        0,
        "fraudulent",
        "2099-01-01T00:00:00+00:00",
    )

    saga = await temporal.start_workflow(
        DISPUTE_WORKFLOW_NAME,
        facts,
        id=dispute_id,
        task_queue=stack.task_queue,
        start_signal="dispute_event",
        start_signal_args=[event],
    )
    await signal_handled(temporal, dispute_id, "dispute_event")
    await saga.signal("dispute_event", forged(dataclasses.replace(event, event_id="evt_forged_2")))
    await signal_handled(temporal, dispute_id, "dispute_event")
    disputes = await api.get("/v1/disputes", params={"payment_id": payment["id"]})
    balance = await balance_of(api, payment["customer_id"], "EUR")
    await saga.terminate("test over")

    assert disputes.json()["data"] == []
    assert balance["posted"] == 3_000


@pytest.fixture
def api_with_other_key(stack: Stack, tmp_path: Path) -> Iterator[httpx.AsyncClient]:
    """A second API process whose decision signing key the workers do not hold (a rotation done
    in the wrong order): an ops client of it."""
    port = free_port()
    env = {
        **stack.api.env,
        "PAYSAGA_API_PORT": str(port),
        "PAYSAGA_DECISION_SIGNING_KEYS": json.dumps(["a key that no worker of this stack holds"]),
    }
    url = f"http://127.0.0.1:{port}"
    other = Service("api-other-key", stack.api.argv, env, tmp_path / "api.log", f"{url}/healthz")
    other.start()
    headers = {"Authorization": f"Bearer {DEV_OPS_KEY}"}
    try:
        yield httpx.AsyncClient(base_url=url, headers=headers, timeout=30)
    finally:
        other.stop()


async def test_review_signed_with_a_key_the_workers_lack_is_unavailable(
    api: httpx.AsyncClient, api_with_other_key: httpx.AsyncClient, tmp_path: Path
) -> None:
    customer = await funded_customer(api, 600_000)
    body = {"customer_id": customer["id"], "amount": 500_000, "currency": "EUR"}
    created = await post_payment(api, "/v1/withdrawals", {**body, "destination": "pm_ok"})
    assert created.status_code == 202, created.text
    payment_id = created.json()["id"]
    await wait_status(api, payment_id, {"requires_review"})

    async with api_with_other_key as ops:
        reviewed = await ops.post(
            f"/v1/payments/{payment_id}/review", json={"decision": "approve", "reason": "checked"}
        )
    still = await api.get(f"/v1/payments/{payment_id}")

    assert reviewed.status_code == 503, reviewed.text
    assert reviewed.json()["code"] == "service_unavailable"
    assert "PAYSAGA_DECISION_SIGNING_KEYS" in (tmp_path / "api.log").read_text()  # the why
    assert still.json()["status"] == "requires_review"
