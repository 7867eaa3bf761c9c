"""Python client for a Ferry server (httpx)."""

from ferry.client.client import Client, ConnectionFailed, ModelInfo, PredictResponse

__all__ = ["Client", "ConnectionFailed", "ModelInfo", "PredictResponse"]
