"""Personal data sealed at rest: AES-256-GCM under the installation's data keys, bound to its row."""

from __future__ import annotations

import base64
import binascii
import os
import re
from collections.abc import Mapping

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from domain.errors import PaysagaError
from paysaga.settings import Settings

NONCE_BYTES = 12
KEY_ID = re.compile(r"[A-Za-z0-9_.-]{1,64}")
SEPARATOR = ":"  # a sealed value is `<key id>:<base64 of nonce and ciphertext>`


class PersonalDataUnreadable(PaysagaError):
    """A sealed value does not open: its key is not configured, or it was altered or moved from
    another row. The message names the row and the key id, never the data."""

    code = "personal_data_unreadable"


def sealed_at(table: str, column: str, merchant_id: str, row_id: str) -> bytes:
    """The associated data that binds a sealed value to its table, column, merchant and row: the
    same ciphertext copied anywhere else does not open."""
    return f"paysaga/{table}.{column}/{merchant_id}/{row_id}".encode()


def key_id_of(sealed: str) -> str:
    """The id of the data key a sealed value was sealed with."""
    return sealed.split(SEPARATOR, 1)[0]


class PersonalDataCipher:
    """Seals with the current data key; opens with whichever configured key a value names, so
    values sealed before a rotation keep opening as long as their key stays listed."""

    def __init__(self, keys: Mapping[str, bytes], current_key_id: str) -> None:
        if current_key_id not in keys:
            raise ValueError(f"the current data key id {current_key_id!r} has no key")
        for key_id, key in keys.items():
            if not KEY_ID.fullmatch(key_id):
                raise ValueError(f"data key id {key_id!r} must be letters, digits, '_.-'")
            if len(key) != 32:
                raise ValueError(f"data key {key_id!r} is {len(key)} bytes, not 32")
        self._ciphers = {key_id: AESGCM(key) for key_id, key in keys.items()}
        self.current_key_id = current_key_id

    @classmethod
    def from_settings(cls, settings: Settings) -> PersonalDataCipher:
        """The cipher of the configured keys (base64 in `data_keys`)."""
        keys: dict[str, bytes] = {}
        for key_id, encoded in settings.data_keys.items():
            try:
                keys[key_id] = base64.b64decode(encoded, validate=True)
            except binascii.Error as exc:
                raise ValueError(f"data key {key_id!r} is not valid base64") from exc
        return cls(keys, settings.data_current_key_id)

    def seal(self, value: str, where: bytes) -> str:
        """`value` encrypted under the current key, bound to `where` (see `sealed_at`)."""
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._ciphers[self.current_key_id].encrypt(nonce, value.encode(), where)
        return f"{self.current_key_id}{SEPARATOR}{base64.b64encode(nonce + sealed).decode()}"

    def open(self, sealed: str, where: bytes) -> str:
        """The plaintext of a sealed value; PersonalDataUnreadable if it does not open here."""
        key_id, _, encoded = sealed.partition(SEPARATOR)
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            raise PersonalDataUnreadable(
                f"{where.decode()} is sealed with data key {key_id!r}, which is not configured"
                " (keep every old key in PAYSAGA_DATA_KEYS until `paysaga data reencrypt`"
                " reports none left)"
            )
        try:
            data = base64.b64decode(encoded, validate=True)
            plain = cipher.decrypt(data[:NONCE_BYTES], data[NONCE_BYTES:], where)
        except (binascii.Error, InvalidTag, ValueError) as exc:
            raise PersonalDataUnreadable(
                f"{where.decode()} does not open with data key {key_id!r}: altered, or moved"
                " from another row"
            ) from exc
        return plain.decode()

    def reseal(self, sealed: str, where: bytes) -> str:
        """The value sealed again under the current key (unchanged if it already is)."""
        if key_id_of(sealed) == self.current_key_id:
            return sealed
        return self.seal(self.open(sealed, where), where)
