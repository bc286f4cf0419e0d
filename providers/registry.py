"""Building the configured providers by name."""

from __future__ import annotations

import httpx

from providers.base import DisputeProvider, PaymentProvider, ProviderConfigurationError
from providers.sandbox import SandboxProvider

SANDBOX_CARDS = "sandbox-cards"
SANDBOX_BANK = "sandbox-bank"
# In routing order: the first is the primary, the next ones the failover choices.
PROVIDER_NAMES = (SANDBOX_CARDS, SANDBOX_BANK)


def build_providers(
    psp_url: str,
    timeout_seconds: float,
    client: httpx.AsyncClient,
    names: tuple[str, ...] = PROVIDER_NAMES,
) -> dict[str, PaymentProvider]:
    """The providers `names` at `psp_url`, by name in routing order, sharing one HTTP client."""
    return {name: SandboxProvider(name, psp_url, client, timeout_seconds) for name in names}


def build_dispute_providers(
    psp_url: str,
    timeout_seconds: float,
    client: httpx.AsyncClient,
    names: tuple[str, ...] = PROVIDER_NAMES,
) -> dict[str, DisputeProvider]:
    """The same providers as `build_providers`, seen through their dispute API."""
    return {name: SandboxProvider(name, psp_url, client, timeout_seconds) for name in names}


def select_provider(providers: dict[str, PaymentProvider], name: str) -> PaymentProvider:
    """The provider called `name`, or `ProviderConfigurationError` if none is configured so."""
    try:
        return providers[name]
    except KeyError:
        raise ProviderConfigurationError(f"no provider named {name!r}") from None
