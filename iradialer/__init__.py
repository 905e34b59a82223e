"""iradialer: an outbound-dialer HTTP API server over FreeSWITCH."""

__version__ = "0.1.0"
