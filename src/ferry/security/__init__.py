"""Security: identities, API keys, JWT verification, scopes, quotas, audit, and model scanning."""
