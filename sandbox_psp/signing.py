"""How the sandbox PSP signs its webhooks: HMAC-SHA256 over `timestamp.body`, `t=...,v1=...`.

Written apart from the service's verifier (`providers.webhooks.verify`) on purpose: a PSP signs
with its own code, so a signing bug on either side shows in a test instead of cancelling out.
"""

from __future__ import annotations

import hashlib
import hmac

SIGNATURE_HEADER = "Sandbox-Signature"


def signature_header(secret: str, body: bytes, timestamp: int) -> str:
    """The `Sandbox-Signature` value for `body` sent at `timestamp` (unix seconds)."""
    message = b"%d.%s" % (timestamp, body)
    digest = hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"
