"""A merchant's webhook URL: what the schema's pattern accepts is a URL every client can parse.

The schema fuzzer echoes a merchant's `webhook_url` back and parses it; a pattern that let
`http://[` through made Python's own `urlsplit` raise (and the outbox could never have sent to it).
"""

from __future__ import annotations

from urllib.parse import urlsplit

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from api.schemas import HTTP_URL_PATTERN, MerchantUpdate


@pytest.mark.parametrize(
    "url",
    [
        "http://[",
        "http://a]b",
        "http://[::1",
        "http://host:99999/h",
        "http://host:65536",
        "http://host:/h",
        "http://host:abc",
        "https://user:pw@host/h",
        "ftp://host/h",
        "http://",
        "http://host/\x14",
        "http://[::1]:8080/h",
    ],
)
def test_a_url_no_client_can_use_is_refused(url: str) -> None:
    with pytest.raises(ValidationError):
        MerchantUpdate(webhook_url=url)


@pytest.mark.parametrize(
    "url",
    [
        "https://merchant.example.test/hooks/1?x=1#f",
        "http://127.0.0.1:8080/h",
        "http://localhost:65535/h",
        "https://xn--bcher-kva.example/",
        "http://host",
    ],
)
def test_a_usable_url_is_taken_as_written(url: str) -> None:
    assert MerchantUpdate(webhook_url=url).webhook_url == url


@settings(max_examples=400, deadline=None)
@given(st.from_regex(HTTP_URL_PATTERN, fullmatch=True))
def test_every_url_the_pattern_accepts_parses(url: str) -> None:
    parts = urlsplit(url)
    assert parts.scheme in ("http", "https") and parts.hostname
    _ = parts.port  # raises on a port out of range
    assert httpx.URL(url).host
