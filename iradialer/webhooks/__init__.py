"""
Webhook delivery: durable, ordered per call, signed, retried.  See C{docs/webhooks.md}.
"""

from iradialer.webhooks.service import WebhookService
from iradialer.webhooks.signing import signature_header

__all__ = ["WebhookService", "signature_header"]
