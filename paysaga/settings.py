"""The one Settings object: every knob of paysaga, read from `PAYSAGA_*` environment variables."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from domain.merchants import DEV_MERCHANT_2_ID, DEV_MERCHANT_ID
from paysaga.secret_files import SecretFilesSource

# Development defaults: public, so anyone could use them. A process starts with any of them only
# when PAYSAGA_ENVIRONMENT says `development` explicitly (see `refuse_default_secrets`).
DEV_MERCHANT_KEY = "sk_test_merchant"
DEV_OPS_KEY = "sk_test_ops"
DEV_MERCHANT_2_KEY = "sk_test_merchant_2"
DEV_PLATFORM_KEY = "sk_test_platform"
DEV_CODEC_KEY_ID = "dev-2026-11"
DEV_CODEC_KEY = "5612A476m8MaeIWSr/E2A17DJqY1V8vZ3xq0XjJZ2dk="
DEV_DATA_KEY_ID = "dev-data-2026-12"
DEV_DATA_KEY = "22OBSbL4Fl+hwd9xLDqUdj9H8TQ+TjFTmgxTyokE180="
DEV_PSP_WEBHOOK_SECRETS = {
    "sandbox-cards": "whsec_sandbox_cards_dev",
    "sandbox-bank": "whsec_sandbox_bank_dev",
}
DEV_MERCHANT_WEBHOOK_SECRET = "whsec_merchant_dev"
DEV_DECISION_SIGNING_KEY = "dsk_dev_paysaga_decisions_public_key"
DECISION_SIGNING_KEY_LENGTH_MIN = 32
EVENT_RETENTION_DAYS_MIN = 30  # PRODUCT.md, Events: kept at least 30 days


class KeyGrant(BaseModel):
    """What a key of the settings may do, and for which merchant (none: a platform key)."""

    merchant: str | None = DEV_MERCHANT_ID
    scopes: list[str]


class Settings(BaseSettings):
    """Configuration of every paysaga process (API, worker, sandbox PSP, dev stack)."""

    # populate_by_name: code and tests may name an aliased field as any other (`temporal_address=`).
    model_config = SettingsConfigDict(
        env_prefix="PAYSAGA_", env_file=".env", extra="ignore", populate_by_name=True
    )

    # Production unless told otherwise: a deployment that forgets this setting refuses to start
    # with the public development keys and secrets instead of running with them.
    environment: Literal["development", "production"] = "production"
    data_dir: Path = Path(".data")

    # Ledger database. Empty in development: the dev stack starts an embedded PostgreSQL.
    database_url: str = ""
    database_pool_min: int = 2
    database_pool_max: int = 8
    # `paysaga migrate` waits this long at most for a lock held by running processes, then fails
    # (run it again) instead of stalling every query queued behind it.
    migration_lock_timeout_seconds: float = Field(10.0, gt=0)
    # Behind PgBouncer in transaction mode below 1.21 (or with its max_prepared_statements 0):
    # false, so that psycopg never prepares a statement on a server connection the next
    # transaction may not get (README, "PgBouncer").
    database_prepared_statements: bool = True
    # A URL straight to PostgreSQL, when database_url goes through PgBouncer in transaction mode:
    # for LISTEN (the API hears revoked keys), which a transaction pooler cannot carry.
    database_listen_url: str = ""

    # Temporal: the connection comes from Temporal's own configuration (a profile of
    # TEMPORAL_CONFIG_FILE and the TEMPORAL_* variables, paysaga.temporal_connection); each of
    # these settings, when given, wins over it. Any TLS file turns TLS on; without a CA the
    # system's roots check the server. An API key is sent over TLS, never in clear.
    temporal_address: str = "127.0.0.1:7233"
    temporal_namespace: str = "default"
    temporal_tls: bool | None = None  # true/false: TLS on or off whatever the profile says
    temporal_tls_cert: Path | None = None  # PEM files: the client certificate and its key
    temporal_tls_key: Path | None = None
    temporal_tls_ca: Path | None = None  # the CA that signed the server's certificate
    temporal_tls_server_name: str = ""
    temporal_api_key: str = ""
    temporal_ui_port: int = 8233
    task_queue: str = "paysaga-payments"
    # Run the sagas in Temporal's workflow sandbox (it re-creates each workflow's module state and
    # proxies its imports, about 14 ms of worker CPU per deposit). Off by default: every saga path
    # runs sandboxed in the test suite (tests/workflows) and its histories replay there, which is
    # where a non-deterministic call is caught. README, "Benchmark".
    workflow_sandbox: bool = False
    # Workflows kept in the worker's memory between their tasks (sticky cache; the SDK's default):
    # a saga waiting on a provider's webhook resumes without replaying its history.
    max_cached_workflows: int = Field(1000, ge=0)

    # HTTP services.
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    # On SIGTERM the API stops accepting connections and finishes the requests in flight for at
    # most this long; the worker finishes its activities for at most worker_shutdown_seconds.
    # Both stay below the orchestrator's grace period (Kubernetes' terminationGracePeriodSeconds,
    # compose's stop_grace_period), which then kills.
    api_shutdown_seconds: float = Field(20.0, gt=0)
    # API processes on the one port (uvicorn's workers), each with its own pool and wallet
    # engine: PostgreSQL's row locks keep a customer's calls serialized whichever process takes
    # them. Its access log (a line per request) costs CPU on the game calls' path: off unless
    # asked for; the request metrics and the X-Request-Id count and tag every request anyway.
    api_workers: int = Field(1, ge=1, le=64)
    api_access_log: bool = False
    worker_shutdown_seconds: float = Field(10.0, gt=0)
    # The dev stack's demo checkout (devtools/demo_checkout.py), a merchant's page of its
    # own beside the API: `make dev` serves it on this port.
    demo_port: int = 8300
    # Secret -> {"merchant": "mer_...", "scopes": [...]}; a bare list of scopes is a key of the
    # development merchant (the form before merchants existed); `"merchant": null` with
    # `["platform"]` is a platform key (add "codec" for the installation's operators). The API creates the merchants named here at its start.
    api_keys: dict[str, KeyGrant] = {
        DEV_MERCHANT_KEY: KeyGrant(merchant=DEV_MERCHANT_ID, scopes=["payments"]),
        DEV_OPS_KEY: KeyGrant(merchant=DEV_MERCHANT_ID, scopes=["payments", "ops"]),
        DEV_MERCHANT_2_KEY: KeyGrant(merchant=DEV_MERCHANT_2_ID, scopes=["payments", "ops"]),
        DEV_PLATFORM_KEY: KeyGrant(merchant=None, scopes=["platform", "codec"]),
    }
    # Keys made by `paysaga keys create` live (hashed) in the database; the API remembers a
    # looked-up key this long. A revocation reaches every API process at once (LISTEN/NOTIFY,
    # see api.key_revocations), so this only bounds memory; 0 looks every key up each request.
    api_key_cache_seconds: float = 30.0
    idempotency_key_ttl_hours: int = 24
    # The game wallet's writers, each with its own connection: batches commit in parallel, a
    # customer's calls always go to the same one (in arrival order).
    wallet_writers: int = Field(4, ge=1, le=64)
    # A writer's limits: its batch waits this long for a row lock / for any statement, and for a
    # new connection; this many calls wait per writer (beyond, 503 wallet_busy with Retry-After).
    wallet_lock_timeout_ms: int = Field(2_000, ge=1)
    wallet_statement_timeout_ms: int = Field(5_000, ge=1)
    wallet_connect_timeout_seconds: int = Field(5, ge=1)
    wallet_queue_max: int = Field(2_048, ge=1)
    # Ledger write keys outlive any saga (30 days at most) so that no retry finds its key gone.
    ledger_idempotency_retention_days: int = 45
    retention_purge_interval_seconds: int = 3600  # how often expired idempotency records go

    # Payload codec: AES-256-GCM keys (32 bytes, base64) by key id. Payloads are encrypted with
    # the current key; every listed key decrypts, so rotation adds a key and moves the current id.
    codec_keys: dict[str, str] = {DEV_CODEC_KEY_ID: DEV_CODEC_KEY}
    codec_current_key_id: str = DEV_CODEC_KEY_ID
    # Personal data at rest (names, birth dates, payment methods and destinations): AES-256-GCM
    # keys (32 bytes, base64) by key id, apart from the codec's. The current key seals; every
    # listed key opens, so rotation adds a key, moves the current id, then `paysaga data
    # reencrypt` moves every row to it before the old key is dropped.
    data_keys: dict[str, str] = {DEV_DATA_KEY_ID: DEV_DATA_KEY}
    data_current_key_id: str = DEV_DATA_KEY_ID
    # Origins of the Temporal Web UI allowed to call the API's codec endpoint; default: the UI's.
    codec_cors_origins: list[str] = []
    # Development only: the local Temporal UI (which sends no API key) may decode from loopback.
    codec_open_to_local_ui: bool = False
    # Money decisions sent to sagas (reviews, resolutions, dispute answers, forfeits, provider
    # events) carry the API's HMAC (domain.decisions), so that nobody who merely reaches Temporal
    # makes one. The API and every worker hold the same list: the first key signs, every key
    # verifies. To rotate, give every process [new, old], then drop the old key once no request
    # signed with it is in flight (a verdict is recorded in the histories: replays need no key).
    decision_signing_keys: list[str] = Field([DEV_DECISION_SIGNING_KEY], min_length=1)

    # Sandbox PSP (the service, and the adapter that talks to it).
    psp_host: str = "127.0.0.1"
    psp_port: int = 8100
    psp_url: str = ""  # default: http://<psp_host>:<psp_port>
    psp_timeout_seconds: float = 5.0
    psp_webhook_url: str = ""  # default: http://<api_host>:<api_port>/v1/webhooks/providers
    psp_webhook_secrets: dict[str, str] = DEV_PSP_WEBHOOK_SECRETS
    webhook_tolerance_seconds: int = 300
    # The sandbox PSP's own behaviour.
    psp_database_path: Path | None = None  # default: <data_dir>/sandbox_psp.sqlite3
    psp_webhook_delay_seconds: float = 0.2
    psp_stall_seconds: float = 10.0  # how long `pm_timeout` keeps the client waiting
    psp_webhook_retry_max_seconds: float = 30.0

    # Sandbox KYC and risk rules (PRODUCT.md defaults).
    kyc_minimum_age: int = 18
    blocked_countries: list[str] = ["KP", "IR", "SY", "CU"]
    sanctions_list: list[str] = ["Sanctioned Test Person"]
    # In euros (major units), whatever the payment's currency (valued at the reference rates).
    review_threshold_major: int = 5_000  # withdrawals and transfers at or above need review
    deposit_limit_major: int = 50_000  # a single deposit above is declined
    velocity_max_payments: int = 30
    velocity_window_seconds: int = 60

    # FX: the sandbox rate table, priced with a spread and a fee.
    fx_spread_bps: int = 50
    fx_fee_bps: int = 30
    quote_ttl_seconds: int = 60
    house_owner_id: str = "house"  # owner of the fee and FX position accounts

    reconciliation_interval_seconds: int = 3600
    # A payment booked in the ledger is a mismatch only once its provider line is this late.
    reconciliation_grace_seconds: int = 86_400
    # The orphan sweep: payments still `processing` this long after their insert whose workflow
    # never started (Temporal was down and the client never retried) end failed/saga_not_started.
    payment_sweep_interval_seconds: int = 60
    payment_sweep_grace_seconds: int = 120
    # The secret that signs the development merchant's webhooks while its own row names none;
    # every merchant sets its own endpoint (PATCH /v1/merchant), there is no installation-wide one.
    merchant_webhook_secret: str = DEV_MERCHANT_WEBHOOK_SECRET
    # Delivery of the event feed to merchants' webhooks, by every worker (and by `paysaga
    # deliver-webhooks`): each merchant's events one at a time in sequence order, merchants side
    # by side. A delivery claimed by a process that dies is sent again once its lease runs out.
    webhook_delivery_poll_interval_seconds: float = 1.0  # how often due deliveries are looked for
    webhook_delivery_batch_size: int = 100  # events of one merchant claimed at a time
    webhook_delivery_concurrency: int = 32  # merchants delivered to at once, per process
    webhook_delivery_lease_seconds: float = 60.0  # must outlast one request (the timeout)
    webhook_delivery_timeout_seconds: float = 10.0
    # Retries back off exponentially from the first delay to the cap, each with jitter.
    webhook_delivery_retry_initial_seconds: float = 1.0
    webhook_delivery_retry_max_seconds: float = 3600.0
    # An event not taken this long after it happened is dead-lettered for an operator to redeliver.
    webhook_delivery_give_up_days: int = 3
    # Events are kept at least 30 days (the contract's promise), then purged by the retention
    # schedule with their deliveries.
    event_retention_days: int = EVENT_RETENTION_DAYS_MIN

    # Sagas.
    # Provider choice per operation, in order of preference (cost, availability); a key
    # "<operation>:<CURRENCY>" overrides the operation's default for that currency.
    provider_routing: dict[str, list[str]] = {
        "charge": ["sandbox-cards", "sandbox-bank"],
        "payout": ["sandbox-cards", "sandbox-bank"],
    }
    # Success-rate routing (providers/success_rate.py): a deposit's accounts in that order, except
    # that one whose authorization rate (approved / approved + declined) over the window, for the
    # deposit's method family and currency, is more than the margin below a peer's goes later;
    # only an account with the minimum of attempts has a rate. A share of deposits tries another
    # account first, at random (exploration), so that every account's rate stays known.
    routing_window_seconds: float = Field(900.0, gt=0)
    routing_min_attempts: int = Field(20, ge=1)
    routing_rate_margin: float = Field(0.2, ge=0, le=1)
    routing_exploration_share: float = Field(0.05, ge=0, le=1)
    provider_max_concurrent_calls: int = 50  # per provider and worker process
    provider_attempts: int = 3  # calls to one provider answering "not processed" before failover
    webhook_wait_seconds: float = 30.0  # then the saga polls the provider
    # Circuit breakers per provider account (PRODUCT.md, "Providers: adapters, accounts, health"):
    # over its last `breaker_window_calls` calls, at least `breaker_minimum_calls` of them and
    # this share or more unavailable, routing skips it for `breaker_open_seconds`, then lets
    # `breaker_probe_calls` probes through.
    breaker_window_calls: int = Field(20, ge=1, le=1000)
    breaker_minimum_calls: int = Field(5, ge=1)
    breaker_failure_rate: float = Field(0.5, gt=0.0, le=1.0)
    breaker_open_seconds: float = Field(30.0, gt=0.0)
    breaker_probe_calls: int = Field(3, ge=1)
    poll_interval_seconds: float = 2.0
    poll_interval_max_seconds: float = 600.0  # polling an unknown outcome backs off up to this
    # An outcome still unknown this long after the provider call parks the payment in
    # `requires_intervention` (polling goes on; an operator may resolve it).
    requires_intervention_after_seconds: float = 86_400.0
    # A deposit whose customer has not completed the provider's authentication (3-D Secure, the
    # bank's approval) this long after it was asked is cancelled at the provider and fails
    # `authentication_abandoned`.
    authentication_timeout_seconds: float = Field(default=900.0, gt=0)
    review_deadline_seconds: float = 86_400.0  # a payment in review is rejected after this

    # Observability.
    log_format: Literal["json", "text"] = "json"
    log_level: str = "INFO"
    # The worker's Prometheus endpoint (Temporal SDK metrics and paysaga_payments_*), served at
    # http://<address>/metrics; empty or port 0 disables it. Give each worker process on one
    # machine its own PAYSAGA_WORKER_METRICS_ADDRESS (a worker whose port is taken runs without).
    # Loopback by default (dev, tests); 0.0.0.0:9464 in compose and Kubernetes, for Prometheus.
    worker_metrics_address: str = "127.0.0.1:9464"
    # The API reads the gauges of the books (payments waiting by status and age, the outbox) from
    # PostgreSQL this often; 0: never. And runs the ledger audit this often (one API at a time).
    metrics_refresh_seconds: float = Field(15.0, ge=0)
    ledger_audit_interval_seconds: float = Field(3600.0, ge=0)
    # The bearer token a scraper sends for the API's /metrics (Prometheus: `authorization:
    # {credentials: ...}`). Required once set; in production, /metrics serves nobody without it.
    metrics_token: str = ""
    # Deprecated: traces are configured by the standard OTEL_* variables (OTEL_TRACES_EXPORTER,
    # OTEL_EXPORTER_OTLP_ENDPOINT...: paysaga/observability/tracing.py). Still honoured, with a
    # warning: an OTLP/HTTP traces URL, or "console".
    otel_exporter_endpoint: str = ""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Arguments, then variables, then `PAYSAGA_X_FILE` files (paysaga.secret_files)."""
        files = SecretFilesSource(settings_cls)
        return init_settings, env_settings, files, dotenv_settings, file_secret_settings

    @field_validator("api_keys", mode="before")
    @classmethod
    def _scopes_alone_are_the_dev_merchant(cls, value: object) -> object:
        if isinstance(value, dict):
            return {
                secret: {"scopes": grant} if isinstance(grant, list) else grant
                for secret, grant in value.items()
            }
        return value

    @field_validator("decision_signing_keys")
    @classmethod
    def _decision_keys_are_long(cls, value: list[str]) -> list[str]:
        if any(len(key) < DECISION_SIGNING_KEY_LENGTH_MIN for key in value):
            raise ValueError(
                f"each decision signing key needs {DECISION_SIGNING_KEY_LENGTH_MIN} characters"
                " or more (e.g. `openssl rand -hex 32`)"
            )
        return value

    @field_validator("event_retention_days")
    @classmethod
    def _events_kept_as_promised(cls, value: int) -> int:
        if value < EVENT_RETENTION_DAYS_MIN:
            raise ValueError(
                f"events are kept at least {EVENT_RETENTION_DAYS_MIN} days (the API's contract)"
            )
        return value

    @model_validator(mode="after")
    def _lease_outlasts_a_delivery(self) -> Settings:
        """A lease shorter than a request would let a second process send the same event while
        the first still waits for its answer."""
        if self.webhook_delivery_lease_seconds <= self.webhook_delivery_timeout_seconds:
            raise ValueError(
                "PAYSAGA_WEBHOOK_DELIVERY_LEASE_SECONDS must be longer than"
                " PAYSAGA_WEBHOOK_DELIVERY_TIMEOUT_SECONDS"
            )
        return self

    @model_validator(mode="after")
    def _temporal_certificate_with_its_key(self) -> Settings:
        if (self.temporal_tls_cert is None) != (self.temporal_tls_key is None):
            raise ValueError(
                "PAYSAGA_TEMPORAL_TLS_CERT and PAYSAGA_TEMPORAL_TLS_KEY go together (mutual TLS)"
            )
        return self

    @model_validator(mode="after")
    def _derive_urls(self) -> Settings:
        """URLs left empty follow the configured hosts and ports."""
        if not self.psp_url:
            self.psp_url = f"http://{self.psp_host}:{self.psp_port}"
        if not self.psp_webhook_url:
            self.psp_webhook_url = f"http://{self.api_host}:{self.api_port}/v1/webhooks/providers"
        if not self.codec_cors_origins:
            port = self.temporal_ui_port
            self.codec_cors_origins = [f"http://127.0.0.1:{port}", f"http://localhost:{port}"]
        return self


def default_secrets_in_use(settings: Settings) -> list[str]:
    """The settings that still hold a public development key or secret, by variable name."""
    found = []
    dev_keys = sorted(
        {DEV_MERCHANT_KEY, DEV_OPS_KEY, DEV_MERCHANT_2_KEY, DEV_PLATFORM_KEY}
        & set(settings.api_keys)
    )
    if dev_keys:
        found.append(f"PAYSAGA_API_KEYS ({', '.join(dev_keys)})")
    dev_codec = sorted(k for k, v in settings.codec_keys.items() if v == DEV_CODEC_KEY)
    if dev_codec:
        found.append(f"PAYSAGA_CODEC_KEYS ({', '.join(dev_codec)})")
    dev_data = sorted(k for k, v in settings.data_keys.items() if v == DEV_DATA_KEY)
    if dev_data:
        found.append(f"PAYSAGA_DATA_KEYS ({', '.join(dev_data)})")
    dev_psp = sorted(
        provider
        for provider, secret in settings.psp_webhook_secrets.items()
        if secret in DEV_PSP_WEBHOOK_SECRETS.values()
    )
    if dev_psp:
        found.append(f"PAYSAGA_PSP_WEBHOOK_SECRETS ({', '.join(dev_psp)})")
    if settings.merchant_webhook_secret == DEV_MERCHANT_WEBHOOK_SECRET:
        found.append("PAYSAGA_MERCHANT_WEBHOOK_SECRET")
    if DEV_DECISION_SIGNING_KEY in settings.decision_signing_keys:
        found.append("PAYSAGA_DECISION_SIGNING_KEYS")
    return found


def refuse_default_secrets(settings: Settings) -> None:
    """Outside development, a process refuses to start while any default secret is configured."""
    found = default_secrets_in_use(settings)
    if settings.environment != "development" and found:
        raise RuntimeError(
            f"refusing to start in {settings.environment} with the public development defaults of "
            f"{'; '.join(found)}: set them, or PAYSAGA_ENVIRONMENT=development on a dev machine"
        )


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return Settings()
