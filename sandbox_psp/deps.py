"""What every sandbox route shares: its error answer, field types and `Annotated` dependencies."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from pydantic import Field, StrictInt, StringConstraints

from sandbox_psp.behaviours import PROVIDERS
from sandbox_psp.settings import SandboxSettings
from sandbox_psp.store import OperationStore
from sandbox_psp.webhook_dispatch import WebhookDispatcher

Text = Annotated[str, StringConstraints(min_length=1, max_length=255)]
Amount = Annotated[StrictInt, Field(gt=0, le=10**15)]
Currency = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]


class PSPError(Exception):
    """An error answer of the sandbox PSP: `{"error": code, "message": message}`."""

    def __init__(self, status_code: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.code = code
        self.message = message


def get_store(request: Request) -> OperationStore:
    """The process's SQLite store."""
    store: OperationStore = request.app.state.store
    return store


def get_settings(request: Request) -> SandboxSettings:
    """The process's settings."""
    settings: SandboxSettings = request.app.state.settings
    return settings


def get_dispatcher(request: Request) -> WebhookDispatcher:
    """The process's webhook dispatcher, to wake when events are recorded."""
    dispatcher: WebhookDispatcher = request.app.state.dispatcher
    return dispatcher


StoreDep = Annotated[OperationStore, Depends(get_store)]


def known_provider(provider: str, store: StoreDep) -> str:
    """The `{provider}` path segment, if the sandbox serves it: one of its own two providers, or
    an account a merchant opened here (`POST /_sandbox/accounts`)."""
    if provider not in PROVIDERS and store.account_secret(provider) is None:
        raise PSPError(404, "unknown_provider", f"this PSP does not serve {provider!r}")
    return provider


SettingsDep = Annotated[SandboxSettings, Depends(get_settings)]
DispatcherDep = Annotated[WebhookDispatcher, Depends(get_dispatcher)]
ProviderDep = Annotated[str, Depends(known_provider)]
