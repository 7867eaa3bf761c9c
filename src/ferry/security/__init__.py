"""Security: identities (API keys, JWTs), scopes, quotas, usage metering and the audit log.

Nothing here knows HTTP: ``ferry.server.auth`` maps requests to the scope they need and asks
these modules who is calling, whether they may, and whether they are within their quota.
"""
