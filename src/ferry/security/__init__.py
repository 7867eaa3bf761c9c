"""Security: identities (API keys, JWTs), scopes, quotas, usage metering, the audit log, and
the scanner that reads pickles before anything loads them.

Nothing here knows HTTP: ``ferry.server.auth`` maps requests to the scope they need and asks
these modules who is calling, whether they may, and whether they are within their quota.
"""
