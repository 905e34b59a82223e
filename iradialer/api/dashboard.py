"""
The status dashboard: what C{GET /api/status} answers a browser.

The page (C{dashboard.html} beside this module) is static and self-contained: its script
fetches the same URL as JSON every 10 seconds, with the HTTP Basic credentials the browser
already holds for the page, and draws the figures and the chart itself.  Nothing is loaded
from anywhere else, and the Content-Security-Policy says so: only the page's own script and
style (by hash) run, and it may connect back to this server only.
"""

from __future__ import annotations

import base64
import hashlib
import re
from functools import cache
from importlib.resources import files

from twisted.web.iweb import IRequest
from werkzeug.datastructures import MIMEAccept
from werkzeug.http import parse_accept_header

CHALLENGE = b'Basic realm="iradialer"'


def wants_html(request: IRequest) -> bool:
    """
    The client prefers HTML to JSON (a browser's address bar); anything else gets JSON.
    """
    raw = request.getHeader(b"accept")
    if not raw:
        return False
    accept = parse_accept_header(raw.decode("latin-1"), MIMEAccept)
    return accept.best_match(["application/json", "text/html"]) == "text/html"


def challenge(request: IRequest) -> None:
    """Ask a browser for credentials (any user name, the token as password)."""
    request.setHeader(b"www-authenticate", CHALLENGE)


def _hash_source(element: str, html: str) -> str:
    match = re.search(rf"<{element}>(.*?)</{element}>", html, re.DOTALL)
    assert match is not None, f"dashboard.html has no <{element}>"
    digest = hashlib.sha256(match.group(1).encode("utf-8")).digest()
    return "'sha256-{}'".format(base64.b64encode(digest).decode("ascii"))


@cache
def _page() -> tuple[bytes, bytes]:
    html = files("iradialer.api").joinpath("dashboard.html").read_text(encoding="utf-8")
    policy = (
        "default-src 'none'; "
        f"script-src {_hash_source('script', html)}; "
        f"style-src {_hash_source('style', html)}; "
        "connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; "
        "frame-ancestors 'none'"
    )
    return html.encode("utf-8"), policy.encode("ascii")


def page(request: IRequest) -> bytes:
    """The dashboard, with headers that keep it from being framed, cached or sniffed."""
    body, policy = _page()
    request.setResponseCode(200)
    request.setHeader(b"content-type", b"text/html; charset=utf-8")
    request.setHeader(b"cache-control", b"no-store")
    request.setHeader(b"content-security-policy", policy)
    request.setHeader(b"x-content-type-options", b"nosniff")
    request.setHeader(b"referrer-policy", b"no-referrer")
    request.setHeader(b"vary", b"Accept")
    return body
