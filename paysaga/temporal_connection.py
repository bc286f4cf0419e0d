"""The one way paysaga's processes connect to Temporal: address, namespace, TLS and API key.

The connection comes from Temporal's environment configuration (`temporalio.envconfig`): a
profile of a TOML file (`TEMPORAL_CONFIG_FILE`, default `~/.config/temporalio/temporal.toml`;
`TEMPORAL_PROFILE`, default `default`) and the standard `TEMPORAL_*` variables over it
(`TEMPORAL_ADDRESS`, `TEMPORAL_NAMESPACE`, `TEMPORAL_API_KEY`, `TEMPORAL_TLS`,
`TEMPORAL_TLS_CLIENT_CERT_PATH`, `TEMPORAL_TLS_CLIENT_KEY_PATH`,
`TEMPORAL_TLS_SERVER_CA_CERT_PATH`, `TEMPORAL_TLS_SERVER_NAME`...), as the `temporal` CLI and
every Temporal SDK read them. A `PAYSAGA_TEMPORAL_*` setting given explicitly wins over both.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from temporalio.client import Client
from temporalio.envconfig import ClientConfigProfile, ClientConfigTLS, ClientConnectConfig

from paysaga.settings import Settings

DEFAULT_ADDRESS = "127.0.0.1:7233"
DEFAULT_NAMESPACE = "default"


class TemporalConfigError(RuntimeError):
    """The Temporal profile or its files cannot be read; the message says which and why."""


def temporal_profile(
    settings: Settings | None = None, *, address: str | None = None, namespace: str | None = None
) -> ClientConfigProfile:
    """The profile paysaga connects with: the envconfig profile, under the explicit
    `PAYSAGA_TEMPORAL_*` settings, under the `address`/`namespace` arguments."""
    try:
        profile = ClientConfigProfile.load()
    except Exception as exc:  # the bridge's ConfigError: a missing profile, a broken TOML
        raise TemporalConfigError(
            f"cannot load the Temporal profile: {exc} (TEMPORAL_CONFIG_FILE, TEMPORAL_PROFILE)"
        ) from exc
    if settings is not None:
        profile = _with_settings(profile, settings)
    if address:
        profile = dataclasses.replace(profile, address=address)
    if namespace:
        profile = dataclasses.replace(profile, namespace=namespace)
    return profile


def _with_settings(profile: ClientConfigProfile, settings: Settings) -> ClientConfigProfile:
    """The settings a deployment gave (`model_fields_set`) replace the profile's values."""
    given = settings.model_fields_set
    changes: dict[str, Any] = {}
    if "temporal_address" in given:
        changes["address"] = settings.temporal_address
    if "temporal_namespace" in given:
        changes["namespace"] = settings.temporal_namespace
    if "temporal_api_key" in given:
        changes["api_key"] = settings.temporal_api_key or None
    tls = profile.tls or ClientConfigTLS()
    tls_changes: dict[str, Any] = {}
    if "temporal_tls_cert" in given:
        tls_changes["client_cert"] = settings.temporal_tls_cert
    if "temporal_tls_key" in given:
        tls_changes["client_private_key"] = settings.temporal_tls_key
    if "temporal_tls_ca" in given:
        tls_changes["server_root_ca_cert"] = settings.temporal_tls_ca
    if "temporal_tls_server_name" in given:
        tls_changes["server_name"] = settings.temporal_tls_server_name or None
    if "temporal_tls" in given and settings.temporal_tls is not None:
        tls_changes["disabled"] = not settings.temporal_tls
    elif tls_changes:
        tls_changes["disabled"] = False
    if tls_changes:
        changes["tls"] = dataclasses.replace(tls, **tls_changes)
    return dataclasses.replace(profile, **changes)


def temporal_connect_config(
    settings: Settings | None = None, *, address: str | None = None, namespace: str | None = None
) -> ClientConnectConfig:
    """The `Client.connect` arguments of `temporal_profile`, its files read now (so renewed
    certificates are taken at the next connection)."""
    profile = temporal_profile(settings, address=address, namespace=namespace)
    _check_files(profile.tls)
    try:
        config = profile.to_client_connect_config()
    except Exception as exc:
        raise TemporalConfigError(f"cannot read Temporal's TLS files: {exc}") from exc
    config.setdefault("target_host", DEFAULT_ADDRESS)
    config.setdefault("namespace", DEFAULT_NAMESPACE)
    tls = profile.tls
    if config.get("api_key") and tls is not None and tls.disabled:
        raise TemporalConfigError(
            "a Temporal API key is never sent in clear: remove TEMPORAL_TLS=false"
            " (or PAYSAGA_TEMPORAL_TLS=false), or the key"
        )
    return config


def _check_files(tls: ClientConfigTLS | None) -> None:
    if tls is None or tls.disabled:
        return
    if (tls.client_cert is None) != (tls.client_private_key is None):
        raise TemporalConfigError(
            "Temporal's client certificate and its key go together (mutual TLS):"
            " set both TEMPORAL_TLS_CLIENT_CERT_PATH and TEMPORAL_TLS_CLIENT_KEY_PATH"
        )
    for source in (tls.client_cert, tls.client_private_key, tls.server_root_ca_cert):
        if isinstance(source, Path) and not source.is_file():
            raise TemporalConfigError(f"Temporal TLS file {source} does not exist")


async def connect_temporal(
    settings: Settings | None = None,
    *,
    address: str | None = None,
    namespace: str | None = None,
    **options: Any,
) -> Client:
    """A client of the configured Temporal; `options` go to `Client.connect` (data converter,
    interceptors, lazy...)."""
    config = temporal_connect_config(settings, address=address, namespace=namespace)
    return await Client.connect(**config, **options)
