"""
The C{X-Iradialer-Signature} header: C{t=<unix seconds>,v1=<hex HMAC-SHA256>} where the MAC
covers C{"<t>.<body>"} with the tenant's webhook secret.

While a secret is being rotated the tenant has two, and the header carries one C{v1=} per
secret (C{t=...,v1=<new>,v1=<old>}): a receiver that knows either accepts the event, so the
receiver and the server can switch in any order.  C{t} is the time of the attempt, so a
receiver can refuse stale or replayed requests (see the README for a verifier).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence


def signature_header(body: bytes, secrets: Sequence[str], timestamp: int) -> str:
    signed = str(timestamp).encode("ascii") + b"." + body
    macs = (hmac.new(s.encode("utf-8"), signed, hashlib.sha256).hexdigest() for s in secrets)
    return ",".join([f"t={timestamp}", *(f"v1={mac}" for mac in macs)])
