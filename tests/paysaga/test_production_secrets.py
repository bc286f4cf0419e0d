"""A production start refuses every public development key and secret, and names each one."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from paysaga.settings import Settings, default_secrets_in_use, refuse_default_secrets

REPO_ROOT = Path(__file__).resolve().parents[2]
LIVE = {
    "PAYSAGA_API_KEYS": '{"sk_live_a": ["payments"]}',
    "PAYSAGA_CODEC_KEYS": json.dumps({"prod-1": base64.b64encode(b"k" * 32).decode()}),
    "PAYSAGA_CODEC_CURRENT_KEY_ID": "prod-1",
    "PAYSAGA_DATA_KEYS": json.dumps({"data-1": base64.b64encode(b"d" * 32).decode()}),
    "PAYSAGA_DATA_CURRENT_KEY_ID": "data-1",
    "PAYSAGA_PSP_WEBHOOK_SECRETS": '{"sandbox-cards": "whsec_a", "sandbox-bank": "whsec_b"}',
    "PAYSAGA_MERCHANT_WEBHOOK_SECRET": "whsec_m",
    "PAYSAGA_DECISION_SIGNING_KEYS": json.dumps(["d" * 64]),
}


def start(module: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run `python -m <module>` until it gives up (a refusal happens before any connection)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PAYSAGA_")}
    return subprocess.run(
        [sys.executable, "-m", module],
        cwd=REPO_ROOT,
        env={**clean, "PAYSAGA_TEMPORAL_ADDRESS": "127.0.0.1:1", **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("module", ["api", "worker"])
def test_production_start_with_a_default_secret_refuses_and_names_it(module: str) -> None:
    for variable in LIVE:
        if variable.endswith("_CURRENT_KEY_ID"):
            continue
        env = {k: v for k, v in LIVE.items() if k != variable}
        env.pop(variable.replace("_KEYS", "_CURRENT_KEY_ID"), None)  # a key set with its current id

        run = start(module, {**env, "PAYSAGA_ENVIRONMENT": "production"})

        assert run.returncode != 0
        assert "refusing to start in production" in run.stderr
        assert variable in run.stderr, run.stderr[-2000:]
        named = [other for other in LIVE if other in run.stderr.split("refusing", 1)[1]]
        assert named == [variable]


def test_unset_environment_is_production() -> None:
    run = start("worker", {})

    assert run.returncode != 0
    for variable in (
        "API_KEYS",
        "CODEC_KEYS",
        "DATA_KEYS",
        "PSP_WEBHOOK_SECRETS",
        "MERCHANT_WEBHOOK_SECRET",
        "DECISION_SIGNING_KEYS",
    ):
        assert f"PAYSAGA_{variable}" in run.stderr


def test_development_said_explicitly_accepts_the_defaults() -> None:
    refuse_default_secrets(Settings(environment="development"))
    assert len(default_secrets_in_use(Settings(environment="development"))) == 6
    live = Settings(
        environment="production",
        api_keys={"sk_live_a": ["payments"]},
        codec_keys={"prod-1": base64.b64encode(b"k" * 32).decode()},
        codec_current_key_id="prod-1",
        data_keys={"data-1": base64.b64encode(b"d" * 32).decode()},
        data_current_key_id="data-1",
        psp_webhook_secrets={"sandbox-cards": "whsec_a", "sandbox-bank": "whsec_b"},
        merchant_webhook_secret="whsec_m",
        decision_signing_keys=["d" * 64],
    )
    assert default_secrets_in_use(live) == []
    refuse_default_secrets(live)
