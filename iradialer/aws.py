"""
Amazon Web Services without an SDK: AWS Signature Version 4, and the gzip + base64 JSON that
some AWS APIs (Amazon Lex V2) put in headers.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import hmac
import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from urllib.parse import quote, urlsplit


def sign_v4(
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    access_key: str,
    secret_key: str,
    region: str,
    service: str,
    now: datetime,
) -> dict[str, str]:
    """
    The headers to add to a request for AWS Signature Version 4: C{x-amz-date} and
    C{Authorization}.  Every header given (and C{host}) is signed.
    """
    parts = urlsplit(url)
    amz_date = now.strftime("%Y%m%dT%H%M%SZ")
    day = amz_date[:8]
    signed = {k.lower(): " ".join(v.strip().split()) for k, v in headers.items()}
    signed.setdefault("host", parts.netloc)
    signed["x-amz-date"] = amz_date
    names = sorted(signed)
    query = "&".join(
        sorted(
            f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}"
            for k, _, v in (p.partition("=") for p in parts.query.split("&") if p)
        )
    )
    canonical = "\n".join(
        [
            method.upper(),
            quote(parts.path or "/", safe="/-_.~"),
            query,
            "".join(f"{n}:{signed[n]}\n" for n in names),
            ";".join(names),
            hashlib.sha256(body).hexdigest(),
        ]
    )
    scope = f"{day}/{region}/{service}/aws4_request"
    to_sign = "\n".join(
        ["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()]
    )
    key = f"AWS4{secret_key}".encode()
    for part in (day, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    return {
        "x-amz-date": amz_date,
        "Authorization": (
            f"AWS4-HMAC-SHA256 Credential={access_key}/{scope}, "
            f"SignedHeaders={';'.join(names)}, Signature={signature}"
        ),
    }


def pack_header(value: Any) -> str:
    """C{value} as JSON, gzip-compressed, base64-encoded: how Lex V2 takes header fields."""
    return base64.b64encode(gzip.compress(json.dumps(value).encode())).decode("ascii")


def unpack_header(text: str) -> Any:
    """
    The value of a header Lex V2 sends gzip-compressed and base64-encoded: JSON when it is
    JSON, else the text.

    @raise ValueError: not base64 of gzip data.
    """
    try:
        raw = gzip.decompress(base64.b64decode(text, validate=True))
    except (OSError, EOFError, ValueError) as e:
        raise ValueError(f"not gzip + base64: {e}") from None
    decoded = raw.decode("utf-8", "replace")
    try:
        return json.loads(decoded)
    except ValueError:
        return decoded
