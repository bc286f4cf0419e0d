"""Building the configured providers by name."""

from __future__ import annotations

import httpx

from paysaga.settings import Settings
from providers.base import PaymentProvider, ProviderConfigurationError
from providers.sandbox import SandboxProvider

SANDBOX_CARDS = "sandbox-cards"
SANDBOX_BANK = "sandbox-bank"
# In routing order: the first is the primary, the next ones the failover choices.
PROVIDER_NAMES = (SANDBOX_CARDS, SANDBOX_BANK)


def build_providers(settings: Settings, client: httpx.AsyncClient) -> dict[str, PaymentProvider]:
    """Every configured provider by name, in routing order, sharing one HTTP client."""
    return {
        name: SandboxProvider(name, settings.psp_url, client, settings.psp_timeout_seconds)
        for name in PROVIDER_NAMES
    }


def select_provider(providers: dict[str, PaymentProvider], name: str) -> PaymentProvider:
    """The provider called `name`, or `ProviderConfigurationError` if none is configured so."""
    try:
        return providers[name]
    except KeyError:
        raise ProviderConfigurationError(f"no provider named {name!r}") from None
