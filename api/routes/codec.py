"""The Temporal codec server: the Temporal Web UI and CLI decrypt workflow payloads through it."""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable, Sequence
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, Header, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send
from temporalio.api.common.v1 import Payload

from api.deps import ServicesDep, any_key, codec_key
from domain.errors import InvalidRequest
from paysaga.codec import CodecError, EncryptionCodec

router = APIRouter(prefix="/codec", tags=["ops"])


# Standard base64 with its padding, as `base64.b64decode(..., validate=True)` accepts it.
BASE64 = r"^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$"
Base64 = Annotated[str, Field(pattern=BASE64)]


class CodecPayload(BaseModel):
    """A Temporal `Payload` in protobuf JSON: metadata values and data in base64."""

    model_config = ConfigDict(extra="forbid")  # as protobuf JSON parsing is

    metadata: dict[str, Base64] = {}
    data: Base64 = ""


class CodecPayloads(BaseModel):
    """The body of the codec server protocol, in and out."""

    model_config = ConfigDict(extra="forbid")

    payloads: list[CodecPayload] = []


async def codec_reader(
    request: Request,
    svc: ServicesDep,
    authorization: Annotated[str | None, Header()] = None,
) -> str:
    """A platform key with the `codec` scope, or (development only, when enabled) the local
    Temporal UI on loopback. Merchant keys, `ops` included, are refused: the codec's keys are
    the installation's, not a merchant's."""
    settings = svc.settings
    local = request.client is not None and request.client.host in ("127.0.0.1", "::1")
    if (
        authorization is None
        and local
        and settings.codec_open_to_local_ui
        and settings.environment == "development"
    ):
        return "local-dev-ui"
    return codec_key(await any_key(svc, authorization)).actor


CodecReader = Annotated[str, Depends(codec_reader)]


@router.post("/encode", response_model=CodecPayloads)
async def encode_payloads(
    body: CodecPayloads, svc: ServicesDep, _reader: CodecReader
) -> CodecPayloads:
    """Encrypt payloads with the current codec key (the codec server protocol's `/encode`)."""
    return await _apply(EncryptionCodec.from_settings(svc.settings).encode, body)


@router.post("/decode", response_model=CodecPayloads)
async def decode_payloads(
    body: CodecPayloads, svc: ServicesDep, _reader: CodecReader
) -> CodecPayloads:
    """Decrypt payloads with the key each names (the codec server protocol's `/decode`).

    A payload our codec did not encrypt comes back as it is, as the protocol expects: every
    history holds Temporal's own plaintext payloads (search attributes, local-activity and patch
    markers, tracing headers), which the UI and the CLI send here with the rest and would fail
    on a refusal. Returning them reveals nothing their sender does not hold.
    """
    return await _apply(EncryptionCodec.from_settings(svc.settings).decode, body)


async def _apply(
    transform: Callable[[Sequence[Payload]], Awaitable[list[Payload]]], body: CodecPayloads
) -> CodecPayloads:
    try:
        payloads = [
            Payload(
                metadata={k: base64.b64decode(v, validate=True) for k, v in p.metadata.items()},
                data=base64.b64decode(p.data, validate=True),
            )
            for p in body.payloads
        ]
    except ValueError as exc:  # binascii.Error, or a non-ASCII character
        raise InvalidRequest("payload metadata and data must be base64") from exc
    try:
        transformed = await transform(payloads)
    except CodecError as exc:
        raise InvalidRequest(str(exc), code="codec_error") from exc
    return CodecPayloads(
        payloads=[
            CodecPayload(
                metadata={k: base64.b64encode(v).decode() for k, v in p.metadata.items()},
                data=base64.b64encode(p.data).decode(),
            )
            for p in transformed
        ]
    )


class CodecCORSMiddleware:
    """CORS for the codec endpoint only: the Temporal UI calls it from the browser, nothing else."""

    def __init__(self, app: ASGIApp, origins: Sequence[str]) -> None:
        self._app = app
        self._cors = CORSMiddleware(
            app,
            allow_origins=list(origins),
            allow_methods=["POST", "OPTIONS"],
            allow_headers=["Authorization", "Content-Type", "X-Namespace"],
            allow_credentials=True,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith(f"{router.prefix}/"):
            await self._cors(scope, receive, send)
        else:
            await self._app(scope, receive, send)


def install_codec_cors(app: FastAPI, origins: Sequence[str]) -> None:
    """Let the Temporal UI's origins call the codec endpoint with the operator's credentials."""
    app.add_middleware(CodecCORSMiddleware, origins=origins)
