"""Python SDK over HTTP."""

from ferry.client.client import Client, ModelInfo, PredictResponse
from ferry.errors import ConnectionFailed

__all__ = ["Client", "ConnectionFailed", "ModelInfo", "PredictResponse"]
