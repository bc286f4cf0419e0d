"""Payment provider adapters: the interface the sagas call, the sandbox adapter, webhooks."""

from providers.base import (
    InvalidEvent,
    InvalidSignature,
    Outcome,
    PaymentProvider,
    ProviderConfigurationError,
    ProviderError,
    ProviderRequestRejected,
    ProviderResult,
)
from providers.registry import PROVIDER_NAMES, build_providers, select_provider
from providers.sandbox import SandboxProvider
from providers.webhooks import ProviderEvent, parse_event, sign, verify

__all__ = [
    "PROVIDER_NAMES",
    "InvalidEvent",
    "InvalidSignature",
    "Outcome",
    "PaymentProvider",
    "ProviderConfigurationError",
    "ProviderError",
    "ProviderEvent",
    "ProviderRequestRejected",
    "ProviderResult",
    "SandboxProvider",
    "build_providers",
    "parse_event",
    "select_provider",
    "sign",
    "verify",
]
