"""The sandbox PSP's own settings, read from the same `PAYSAGA_*` variables the stack sets."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# The secrets the sandbox signs with unless told otherwise. A PSP issues its own secrets; these
# equal the service's development defaults by agreement, not by import (a test checks they match).
DEV_WEBHOOK_SECRETS = {
    "sandbox-cards": "whsec_sandbox_cards_dev",
    "sandbox-bank": "whsec_sandbox_bank_dev",
}


class SandboxSettings(BaseSettings):
    """Configuration of the sandbox PSP process: where it listens, where it sends its webhooks."""

    model_config = SettingsConfigDict(env_prefix="PAYSAGA_", env_file=".env", extra="ignore")

    data_dir: Path = Path(".data")
    psp_host: str = "127.0.0.1"
    psp_port: int = 8100
    psp_database_path: Path | None = None  # default: <data_dir>/sandbox_psp.sqlite3

    # Webhooks go to `<psp_webhook_url>/<provider>`; by default the API at api_host:api_port.
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    psp_webhook_url: str = ""
    psp_webhook_secrets: dict[str, str] = DEV_WEBHOOK_SECRETS
    psp_webhook_delay_seconds: float = 0.2
    psp_webhook_retry_max_seconds: float = 30.0
    psp_stall_seconds: float = 10.0  # how long `pm_timeout` keeps the client waiting
    # A dispute's evidence is due this long after it opens (a fraction of a day in tests); then
    # the provider closes it `lost` by itself, as a card network does.
    psp_dispute_evidence_days: float = Field(default=7.0, gt=0)
    # How long the provider takes to decide a dispute once evidence is in.
    psp_dispute_decision_seconds: float = Field(default=2.0, ge=0)

    # Where customers' browsers reach this PSP (its authentication pages), when not at the
    # address the merchant's calls come to (e.g. a container's name); empty: that address.
    psp_public_url: str = ""

    log_format: Literal["json", "text"] = "json"
    log_level: str = "INFO"

    @model_validator(mode="after")
    def _derive_webhook_url(self) -> SandboxSettings:
        """An empty webhook URL follows the API's host and port."""
        if not self.psp_webhook_url:
            self.psp_webhook_url = f"http://{self.api_host}:{self.api_port}/v1/webhooks/providers"
        return self
