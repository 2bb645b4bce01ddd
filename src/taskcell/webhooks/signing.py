"""Secrets and signatures in the Standard Webhooks format, through the ``standardwebhooks``
package (receivers verify with any Standard Webhooks library)."""

from __future__ import annotations

import base64
import secrets
from datetime import datetime

from standardwebhooks.webhooks import Webhook as Signer

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32


def new_secret() -> str:
    """A fresh signing secret: ``whsec_`` and 32 random bytes in base64."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode("ascii")


def signed_headers(secret: str, message_id: str, timestamp: datetime, body: str) -> dict[str, str]:
    """The headers of one attempt: ``webhook-id``, ``webhook-timestamp`` (whole seconds) and
    ``webhook-signature`` (``v1,`` and the base64 HMAC-SHA256 of ``id.timestamp.body``)."""
    signature = Signer(secret).sign(message_id, timestamp, body)
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(int(timestamp.timestamp())),
        "webhook-signature": signature,
        "content-type": "application/json",
    }
