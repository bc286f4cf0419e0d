"""Finding adapters by entry point (`paysaga.providers`) and building the configured providers."""

from __future__ import annotations

from importlib.metadata import entry_points

import httpx

from providers.adapter import ADAPTER_GROUP, AdapterConfig, AdapterFactory, ProviderAdapter
from providers.base import PaymentProvider, ProviderConfigurationError

SANDBOX_CARDS = "sandbox-cards"
SANDBOX_BANK = "sandbox-bank"
# In routing order: the first is the primary, the next ones the failover choices.
PROVIDER_NAMES = (SANDBOX_CARDS, SANDBOX_BANK)
# The adapter (entry-point name) behind each provider name.
PROVIDER_ADAPTERS = {SANDBOX_CARDS: "sandbox", SANDBOX_BANK: "sandbox"}


def discover_adapters() -> dict[str, AdapterFactory]:
    """Every installed adapter's factory, by entry-point name; read at each call, so an adapter
    installed with pip is found without a change to paysaga."""
    return {entry.name: entry.load() for entry in entry_points(group=ADAPTER_GROUP)}


def build_adapter(adapter: str, config: AdapterConfig) -> ProviderAdapter:
    """The adapter registered as `adapter`, built for one account."""
    # Only the named entry point is loaded: another adapter's broken import stays its own problem.
    found = entry_points(group=ADAPTER_GROUP, name=adapter)
    if not found:
        # The sandbox's own entry point is missing when paysaga was not installed (pip install -e).
        installed = sorted(entry.name for entry in entry_points(group=ADAPTER_GROUP))
        raise ProviderConfigurationError(
            f"no adapter {adapter!r} installed (group {ADAPTER_GROUP!r}: {installed})"
        )
    factory: AdapterFactory = next(iter(found)).load()
    return factory(config)


def build_providers(
    psp_url: str,
    timeout_seconds: float,
    client: httpx.AsyncClient,
    names: tuple[str, ...] = PROVIDER_NAMES,
) -> dict[str, PaymentProvider]:
    """The providers `names` at `psp_url`, by name in routing order, sharing one HTTP client."""
    return {
        name: build_adapter(
            PROVIDER_ADAPTERS[name], AdapterConfig(name, psp_url, client, timeout_seconds)
        )
        for name in names
    }


def select_provider(providers: dict[str, PaymentProvider], name: str) -> PaymentProvider:
    """The provider called `name`, or `ProviderConfigurationError` if none is configured so."""
    try:
        return providers[name]
    except KeyError:
        raise ProviderConfigurationError(f"no provider named {name!r}") from None
