"""
The HTTP API: an adapter from JSON requests to domain calls, and from domain errors to the
contract's error bodies.
"""
