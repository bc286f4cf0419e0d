"""The one way paysaga's processes connect to Temporal: address, namespace, TLS and API key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from temporalio.client import Client
from temporalio.service import TLSConfig

from paysaga.settings import Settings


def temporal_tls(settings: Settings) -> TLSConfig | bool:
    """Mutual TLS from the settings' files, plain TLS for an API key alone, else none."""
    files = (settings.temporal_tls_cert, settings.temporal_tls_key, settings.temporal_tls_ca)
    if any(files) or settings.temporal_tls_server_name:
        return TLSConfig(
            server_root_ca_cert=_read(settings.temporal_tls_ca),
            domain=settings.temporal_tls_server_name or None,
            client_cert=_read(settings.temporal_tls_cert),
            client_private_key=_read(settings.temporal_tls_key),
        )
    return bool(settings.temporal_api_key)  # a key is a secret: never sent in clear


def _read(path: Path | None) -> bytes | None:
    # Read at each connection, so that renewed certificates are taken at the next start.
    return path.read_bytes() if path is not None else None


async def connect_temporal(settings: Settings, **options: Any) -> Client:
    """A client of the configured Temporal; `options` go to `Client.connect` (data converter,
    interceptors...)."""
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        tls=temporal_tls(settings),
        api_key=settings.temporal_api_key or None,
        **options,
    )
