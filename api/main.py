"""The FastAPI application: routes, problem+json errors, and the services it holds open."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI

from api.deps import Services
from api.game_calls import install_game_call_fronts
from api.input_guard import InputGuard
from api.key_revocations import RevocationListener
from api.openapi import install_openapi, operation_id
from api.problems import install_problem_handlers
from api.routes import (
    codec,
    customers,
    deposits,
    disputes,
    events,
    fx,
    health,
    merchants,
    metrics,
    notifications,
    ops,
    payments,
    providers,
    reconciliation,
    refunds,
    responsible,
    transfers,
    wallet,
    webhooks,
    withdrawals,
)
from api.telemetry import TelemetryMiddleware
from ledger.engine import Ledger
from paysaga.codec import data_converter
from paysaga.database import open_pool
from paysaga.observability.books_gauges import BooksWatch
from paysaga.observability.tracing import instrument_api, setup_tracing
from paysaga.personal_data import PersonalDataCipher
from paysaga.settings import Settings, get_settings, refuse_default_secrets
from paysaga.store import Store
from paysaga.store.provider_accounts import provider_directory
from paysaga.temporal_connection import connect_temporal
from providers.registry import build_providers
from wallet.engine import WalletEngine
from wallet.limits import wallet_limits


def create_app(settings: Settings | None = None) -> FastAPI:
    """The API; it connects to PostgreSQL and Temporal when it starts serving."""
    settings = settings or get_settings()
    refuse_default_secrets(settings)
    interceptors = setup_tracing(settings, "paysaga-api")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool = await open_pool(
            settings.database_url, settings.database_pool_min, settings.database_pool_max
        )
        temporal = await connect_temporal(
            settings, data_converter=data_converter(settings), interceptors=interceptors
        )
        store = Store(pool, PersonalDataCipher.from_settings(settings))
        for grant in settings.api_keys.values():  # the merchants the configured keys name
            if grant.merchant is not None:
                await store.ensure_merchant(grant.merchant, grant.merchant)
        wallet_engine = WalletEngine(
            settings.database_url,
            writers=settings.wallet_writers,
            house_owner_id=settings.house_owner_id,
            limits=wallet_limits(settings),
        )
        await wallet_engine.start()
        http = httpx.AsyncClient()
        builtin = build_providers(settings.psp_url, settings.psp_timeout_seconds, http)
        directory = provider_directory(settings, store, builtin, http)
        services = Services(settings, pool, store, Ledger(pool), temporal, wallet_engine, directory)
        app.state.services = services
        books_watch = BooksWatch(
            pool, settings.metrics_refresh_seconds, settings.ledger_audit_interval_seconds
        )
        books_watch.start()
        revocations = RevocationListener(settings.database_url, services.key_cache)
        if settings.api_key_cache_seconds > 0:
            revocations.start()  # no listener, no cache: every request looks its key up
        try:
            yield
        finally:
            await revocations.stop()
            await books_watch.stop()
            await wallet_engine.stop()
            await http.aclose()
            await pool.close()

    app = FastAPI(
        title="paysaga",
        version="0.1.0",
        description="Deposits, withdrawals and cross-border transfers as durable sagas.",
        lifespan=lifespan,
        generate_unique_id_function=operation_id,
        # FastAPI's own OpenTelemetry bridge (0.16x) asks the providers on every request whether
        # it is on; the API has its telemetry already (api.telemetry, and instrument_api when
        # tracing is on). An older FastAPI keeps this in `app.extra`.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    install_problem_handlers(app)
    app.add_middleware(InputGuard)
    app.add_middleware(TelemetryMiddleware)
    if interceptors:  # tracing is on
        instrument_api(app)
    for module in (
        health,
        merchants,
        customers,
        responsible,
        deposits,
        withdrawals,
        fx,
        transfers,
        payments,
        refunds,
        disputes,
        wallet,
        events,
        ops,
        providers,
        notifications,
        webhooks,
        reconciliation,
        metrics,
    ):
        app.include_router(module.router)
    app.include_router(codec.router)
    install_game_call_fronts(app, wallet.router)  # after every route: they go first
    codec.install_codec_cors(app, settings.codec_cors_origins)
    install_openapi(
        app,
        anonymous_codec=settings.codec_open_to_local_ui and settings.environment == "development",
    )
    return app
