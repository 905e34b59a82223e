"""
The dialer's domain: tenants, calls, conferences.  Knows neither HTTP nor Event Socket bytes.
"""
