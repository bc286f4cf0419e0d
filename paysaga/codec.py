"""The Temporal payload codec that encrypts every payload (and so the PII) in workflow histories."""

from __future__ import annotations

import base64
import binascii
import dataclasses
import os
from collections.abc import Mapping, Sequence

import temporalio.converter
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload

from paysaga.settings import Settings

ENCODING = b"binary/encrypted"
KEY_ID_METADATA = "encryption-key-id"
NONCE_BYTES = 12


class CodecError(ValueError):
    """A payload cannot be encrypted or decrypted: unknown key id, bad key, tampered data."""


class EncryptionCodec(temporalio.converter.PayloadCodec):
    """AES-256-GCM over the serialized payload; the key id travels in the payload's metadata.

    Encoding uses the current key; decoding picks the key named by the payload, so payloads
    written before a rotation keep decoding as long as their key stays listed.
    """

    def __init__(self, keys: Mapping[str, bytes], current_key_id: str) -> None:
        if current_key_id not in keys:
            raise CodecError(f"the current codec key id {current_key_id!r} has no key")
        for key_id, key in keys.items():
            if len(key) != 32:
                raise CodecError(f"codec key {key_id!r} is {len(key)} bytes, not 32")
        self._ciphers = {key_id: AESGCM(key) for key_id, key in keys.items()}
        self._current_key_id = current_key_id

    @classmethod
    def from_settings(cls, settings: Settings) -> EncryptionCodec:
        """The codec of the configured keys (base64 in `codec_keys`)."""
        keys: dict[str, bytes] = {}
        for key_id, encoded in settings.codec_keys.items():
            try:
                keys[key_id] = base64.b64decode(encoded, validate=True)
            except binascii.Error as exc:
                raise CodecError(f"codec key {key_id!r} is not valid base64") from exc
        return cls(keys, settings.codec_current_key_id)

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.encrypt(payload) for payload in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.decrypt(payload) for payload in payloads]

    def encrypt(self, payload: Payload) -> Payload:
        """The payload as ciphertext under the current key."""
        key_id = self._current_key_id
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._ciphers[key_id].encrypt(nonce, payload.SerializeToString(), None)
        return Payload(
            metadata={"encoding": ENCODING, KEY_ID_METADATA: key_id.encode()},
            data=nonce + sealed,
        )

    def decrypt(self, payload: Payload) -> Payload:
        """The original payload; one not encrypted by this codec is returned as it is."""
        if payload.metadata.get("encoding") != ENCODING:
            return payload
        key_id = payload.metadata.get(KEY_ID_METADATA, b"").decode(errors="replace")
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            raise CodecError(
                f"payload encrypted with unknown codec key id {key_id!r}; "
                "add that key to PAYSAGA_CODEC_KEYS"
            )
        nonce, sealed = payload.data[:NONCE_BYTES], payload.data[NONCE_BYTES:]
        try:
            plain = cipher.decrypt(nonce, sealed, None)
        except InvalidTag as exc:
            raise CodecError(f"payload does not decrypt with codec key {key_id!r}") from exc
        original = Payload()
        original.ParseFromString(plain)
        return original


def data_converter(settings: Settings) -> temporalio.converter.DataConverter:
    """Temporal's default converter with every payload, and every failure, encrypted.

    Failure messages and stack traces would otherwise sit in histories in clear, and they can
    name an account or a customer: with encoded attributes they travel inside an encrypted
    payload, and the UI shows them only through the codec endpoint.
    """
    return dataclasses.replace(
        temporalio.converter.default(),
        payload_codec=EncryptionCodec.from_settings(settings),
        failure_converter_class=temporalio.converter.DefaultFailureConverterWithEncodedAttributes,
    )
