"""Payment provider adapters: the interface the sagas call, the sandbox adapter, webhooks."""

from providers.base import (
    InvalidEvent,
    Outcome,
    PaymentProvider,
    ProviderConfigurationError,
    ProviderError,
    ProviderRequestRejected,
    ProviderResult,
    WebhookSignatureInvalid,
)
from providers.registry import PROVIDER_NAMES, build_providers, select_provider
from providers.sandbox import SandboxProvider
from providers.webhooks import ProviderEvent, parse_event, sign, verify

__all__ = [
    "PROVIDER_NAMES",
    "InvalidEvent",
    "Outcome",
    "PaymentProvider",
    "ProviderConfigurationError",
    "ProviderError",
    "ProviderEvent",
    "ProviderRequestRejected",
    "ProviderResult",
    "SandboxProvider",
    "WebhookSignatureInvalid",
    "build_providers",
    "parse_event",
    "select_provider",
    "sign",
    "verify",
]
