"""The personal data cipher: sealed values name their key, open only at their own row and column."""

from __future__ import annotations

import base64
import os

import pytest

from paysaga.personal_data import (
    PersonalDataCipher,
    PersonalDataUnreadable,
    key_id_of,
    sealed_at,
)
from paysaga.settings import Settings

OLD_KEY, NEW_KEY = os.urandom(32), os.urandom(32)
NAME_OF_A = sealed_at("customers", "full_name_sealed", "mer_a", "cus_1")


def test_sealed_value_names_its_key_and_hides_the_plaintext() -> None:
    cipher = PersonalDataCipher({"k1": OLD_KEY}, "k1")

    sealed = cipher.seal("Ada Lovelace", NAME_OF_A)

    assert key_id_of(sealed) == "k1"
    assert "Ada" not in sealed
    assert cipher.open(sealed, NAME_OF_A) == "Ada Lovelace"
    assert cipher.seal("Ada Lovelace", NAME_OF_A) != sealed  # a fresh nonce every time


@pytest.mark.parametrize(
    "elsewhere",
    [
        sealed_at("customers", "full_name_sealed", "mer_a", "cus_2"),  # another row
        sealed_at("customers", "full_name_sealed", "mer_b", "cus_1"),  # another merchant
        sealed_at("customers", "birth_date_sealed", "mer_a", "cus_1"),  # another column
    ],
)
def test_sealed_value_does_not_open_anywhere_else(elsewhere: bytes) -> None:
    cipher = PersonalDataCipher({"k1": OLD_KEY}, "k1")
    sealed = cipher.seal("Ada Lovelace", NAME_OF_A)

    with pytest.raises(PersonalDataUnreadable, match="moved") as refused:
        cipher.open(sealed, elsewhere)

    assert "Ada" not in str(refused.value)


def test_rotation_opens_old_values_and_reseals_them_under_the_new_key() -> None:
    old = PersonalDataCipher({"k1": OLD_KEY}, "k1").seal("Ada Lovelace", NAME_OF_A)
    rotated = PersonalDataCipher({"k2": NEW_KEY, "k1": OLD_KEY}, "k2")

    resealed = rotated.reseal(old, NAME_OF_A)

    assert rotated.open(old, NAME_OF_A) == "Ada Lovelace"
    assert key_id_of(resealed) == "k2"
    assert rotated.reseal(resealed, NAME_OF_A) == resealed
    assert PersonalDataCipher({"k2": NEW_KEY}, "k2").open(resealed, NAME_OF_A) == "Ada Lovelace"


def test_value_of_a_dropped_key_is_refused_with_the_key_id() -> None:
    old = PersonalDataCipher({"k1": OLD_KEY}, "k1").seal("Ada Lovelace", NAME_OF_A)

    with pytest.raises(PersonalDataUnreadable, match="'k1', which is not configured"):
        PersonalDataCipher({"k2": NEW_KEY}, "k2").open(old, NAME_OF_A)


@pytest.mark.parametrize("sealed", ["k1:not base64!", "k1:", "k1:" + "A" * 40, "garbage"])
def test_malformed_value_is_refused(sealed: str) -> None:
    with pytest.raises(PersonalDataUnreadable):
        PersonalDataCipher({"k1": OLD_KEY}, "k1").open(sealed, NAME_OF_A)


def test_configuration_errors_are_named() -> None:
    with pytest.raises(ValueError, match="has no key"):
        PersonalDataCipher({"k1": OLD_KEY}, "k2")
    with pytest.raises(ValueError, match="not 32"):
        PersonalDataCipher({"k1": b"short"}, "k1")
    with pytest.raises(ValueError, match="letters, digits"):
        PersonalDataCipher({"k:1": OLD_KEY}, "k:1")
    with pytest.raises(ValueError, match="not valid base64"):
        PersonalDataCipher.from_settings(
            Settings(data_keys={"k1": "***"}, data_current_key_id="k1")
        )
    configured = Settings(
        data_keys={"k1": base64.b64encode(OLD_KEY).decode()}, data_current_key_id="k1"
    )
    assert PersonalDataCipher.from_settings(configured).current_key_id == "k1"
