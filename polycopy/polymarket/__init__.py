"""The Polymarket adapter: every venue wire format, endpoint, rate limit and client lives here.

Everything above it sees typed results (schema models and frozen dataclasses), never venue JSON.
"""
