"""The payload codec: AES-GCM encryption of Temporal payloads, with key rotation."""

from __future__ import annotations

import asyncio
import base64
import os
from typing import Any

import pytest
from temporalio.api.common.v1 import Payload

from api.main import create_app
from paysaga.codec import ENCODING, KEY_ID_METADATA, CodecError, EncryptionCodec, data_converter
from paysaga.settings import DEV_CODEC_KEY, Settings
from worker import run_worker

OLD_KEY = os.urandom(32)
NEW_KEY = os.urandom(32)


def plain_payload(text: bytes = b'{"full_name": "Ada Lovelace"}') -> Payload:
    return Payload(metadata={"encoding": b"json/plain"}, data=text)


async def test_encode_decode_round_trip() -> None:
    codec = EncryptionCodec({"k1": OLD_KEY}, "k1")
    original = [plain_payload(), plain_payload(b'"second"')]

    encoded = await codec.encode(original)

    assert [p.metadata["encoding"] for p in encoded] == [ENCODING, ENCODING]
    assert [p.metadata[KEY_ID_METADATA] for p in encoded] == [b"k1", b"k1"]
    assert await codec.decode(encoded) == original


async def test_encode_payload_hides_plaintext() -> None:
    codec = EncryptionCodec({"k1": OLD_KEY}, "k1")

    [encoded] = await codec.encode([plain_payload()])

    assert b"Ada Lovelace" not in encoded.SerializeToString()
    assert b"json/plain" not in encoded.SerializeToString()


async def test_decode_payload_of_old_key_after_rotation() -> None:
    before = EncryptionCodec({"k1": OLD_KEY}, "k1")
    after = EncryptionCodec({"k1": OLD_KEY, "k2": NEW_KEY}, "k2")
    old = await before.encode([plain_payload()])

    [new] = await after.encode([plain_payload()])

    assert await after.decode(old) == [plain_payload()]
    assert new.metadata[KEY_ID_METADATA] == b"k2"
    assert await after.decode([new]) == [plain_payload()]


async def test_decode_payload_of_unknown_key_fails() -> None:
    encoded = await EncryptionCodec({"gone": OLD_KEY}, "gone").encode([plain_payload()])

    with pytest.raises(CodecError, match="unknown codec key id 'gone'"):
        await EncryptionCodec({"k2": NEW_KEY}, "k2").decode(encoded)


async def test_decode_tampered_payload_fails() -> None:
    codec = EncryptionCodec({"k1": OLD_KEY}, "k1")
    [encoded] = await codec.encode([plain_payload()])
    encoded.data = encoded.data[:-1] + bytes([encoded.data[-1] ^ 1])

    with pytest.raises(CodecError, match="does not decrypt"):
        await codec.decode([encoded])


async def test_decode_leaves_unencrypted_payload_untouched() -> None:
    codec = EncryptionCodec({"k1": OLD_KEY}, "k1")

    assert await codec.decode([plain_payload()]) == [plain_payload()]


def test_codec_refuses_missing_current_key_and_short_key() -> None:
    with pytest.raises(CodecError, match="has no key"):
        EncryptionCodec({"k1": OLD_KEY}, "k2")
    with pytest.raises(CodecError, match="not 32"):
        EncryptionCodec({"k1": b"short"}, "k1")


async def test_data_converter_encrypts_with_configured_key() -> None:
    settings = Settings(
        codec_keys={"prod-1": base64.b64encode(NEW_KEY).decode()}, codec_current_key_id="prod-1"
    )
    converter = data_converter(settings)

    [encoded] = await converter.encode(["cus_123"])

    assert encoded.metadata[KEY_ID_METADATA] == b"prod-1"
    assert b"cus_123" not in encoded.data
    assert await converter.decode([encoded], [str]) == ["cus_123"]


def test_default_settings_use_the_dev_key() -> None:
    settings = Settings()

    assert settings.codec_keys[settings.codec_current_key_id] == DEV_CODEC_KEY
    assert len(base64.b64decode(DEV_CODEC_KEY)) == 32


def test_production_start_refuses_the_dev_codec_key() -> None:
    production: dict[str, Any] = {
        "environment": "production",
        "api_keys": {"sk_live_x": ["payments"]},
        "psp_webhook_secrets": {"sandbox-cards": "whsec_live_a", "sandbox-bank": "whsec_live_b"},
        "merchant_webhook_secret": "whsec_live_m",
        "data_keys": {"data-1": base64.b64encode(b"d" * 32).decode()},
        "data_current_key_id": "data-1",
        "decision_signing_keys": ["d" * 64],
    }

    with pytest.raises(RuntimeError, match="PAYSAGA_CODEC_KEYS"):
        create_app(Settings(**production))
    with pytest.raises(RuntimeError, match="PAYSAGA_CODEC_KEYS"):
        asyncio.run(run_worker(Settings(**production)))
    create_app(
        Settings(
            **production,
            codec_keys={"prod-1": base64.b64encode(NEW_KEY).decode()},
            codec_current_key_id="prod-1",
        )
    )
