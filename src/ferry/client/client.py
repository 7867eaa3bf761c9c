"""Client: a small synchronous Python client for a Ferry server's native routes, over httpx."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from types import TracebackType
from typing import TYPE_CHECKING, Any, NotRequired, TypedDict

import httpx
import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ferry.client.drift import DriftCalls
from ferry.client.registry import RegistryCalls
from ferry.errors import ConnectionFailed, FerryError, error_class
from ferry.model.signature import Signature

if TYPE_CHECKING:
    import pandas as pd

URL_ENV = "FERRY_URL"
API_KEY_ENV = "FERRY_API_KEY"
DEFAULT_URL = "http://127.0.0.1:8000"
DEFAULT_TIMEOUT = 30.0

Rows = Sequence[Mapping[str, object]] | Sequence[Sequence[object]]
Columns = Mapping[str, Sequence[object]]


class PredictResponse(TypedDict):
    """The native predict answer: one entry per requested output, plus who answered."""

    predictions: list[Any]
    probabilities: NotRequired[list[list[float]]]
    model: str
    version: str
    request_id: str


class ModelInfo(BaseModel):
    """``GET /v1/models/{name}``: what the server knows about one loaded model."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    name: str
    version: str
    flavor: str
    signature: Signature
    created_at: str = ""
    libraries: dict[str, str] = Field(default_factory=dict)
    example_check: str = ""
    loaded: bool = True
    ready: bool = True


class ServedModel(BaseModel):
    """One entry of ``GET /v1/models``: every model the server can serve, loaded in the
    answering worker or not (``ferry server`` loads a version on its first request); the
    version and flavor are known once it is loaded."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    name: str
    loaded: bool = True
    ready: bool = True
    version: str | None = None
    flavor: str | None = None


class Client(RegistryCalls, DriftCalls):
    """Talk to a Ferry server: ``Client("http://127.0.0.1:8000").predict("iris", rows)``.

    The base URL comes from the argument, else ``FERRY_URL``, else ``http://127.0.0.1:8000``;
    the API key from the argument, else ``FERRY_API_KEY`` (sent as ``Authorization: Bearer``).
    Error answers are raised as the ``FerryError`` subclass the server named in ``error.code``.

    Predictions: ``predict``, ``model``, ``models`` (what a server serves). The registry:
    ``register``, ``registered_models``, ``versions``, ``set_alias``, ``pull``, ``lineage`` ...
    """

    def __init__(
        self,
        url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        http: httpx.Client | None = None,
    ) -> None:
        if http is not None:
            self._http = http
        else:
            base = url or os.environ.get(URL_ENV) or DEFAULT_URL
            self._http = httpx.Client(base_url=base.rstrip("/"), timeout=timeout)
        key = api_key or os.environ.get(API_KEY_ENV)
        self._auth: dict[str, str] = {"authorization": f"Bearer {key}"} if key else {}

    @property
    def base_url(self) -> str:
        return str(self._http.base_url).rstrip("/")

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # --- data plane ---------------------------------------------------------------------------
    def predict(
        self,
        name: str,
        data: Rows | Columns | pd.DataFrame,
        outputs: Sequence[str] | None = None,
        *,
        version: str | None = None,
    ) -> PredictResponse:
        """Predict rows (objects or lists), columns (``{col: [values]}``) or a DataFrame."""
        body: dict[str, object] = _payload(data)
        if outputs:
            body["outputs"] = list(outputs)
        path = f"/v1/models/{name}" + (f"/versions/{version}" if version else "") + "/predict"
        content = orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY)
        answer: PredictResponse = self._request(
            "POST", path, content=content, headers={"content-type": "application/json"}
        ).json()
        return answer

    def model(self, name: str, version: str | None = None) -> ModelInfo:
        """What the server serves as ``name`` (see ``registered_model`` for the registry)."""
        path = f"/v1/models/{name}" + (f"/versions/{version}" if version else "")
        return _model_info(self._request("GET", path).json())

    def models(self) -> list[ServedModel]:
        """Every model the server can serve, loaded or not (see ``registered_models`` for the
        registry, ``model`` for one model's signature)."""
        listing = self._request("GET", "/v1/models").json()
        try:
            return [ServedModel.model_validate(item) for item in listing.get("models", [])]
        except ValidationError as exc:
            raise FerryError(f"the server answered an unexpected model listing: {exc}") from exc

    def ready(self) -> bool:
        """True once every model is loaded and has answered its example; False if unreachable."""
        try:
            return self._http.get("/readyz").status_code == 200
        except httpx.TransportError:
            return False

    # --- security (admin) ---------------------------------------------------------------------
    def usage(
        self,
        *,
        since: str | None = None,
        until: str | None = None,
        key: str | None = None,
        model: str | None = None,
    ) -> list[dict[str, Any]]:
        """``GET /api/v1/usage``: requests, rows, errors, compute ms per key/model/version/day."""
        given = {"since": since, "until": until, "key": key, "model": model}
        params = {k: v for k, v in given.items() if v is not None}
        items: list[dict[str, Any]] = self._request("GET", "/api/v1/usage", params=params).json()[
            "items"
        ]
        return items

    def create_key(
        self, name: str, scopes: Sequence[str], *, expires: str | None = None
    ) -> dict[str, Any]:
        """``POST /api/v1/keys``: the answer's ``key`` is the only copy of the new key."""
        body = {"name": name, "scopes": list(scopes), "expires": expires}
        created: dict[str, Any] = self._request("POST", "/api/v1/keys", json=body).json()
        return created

    def revoke_key(self, key: str) -> list[dict[str, Any]]:
        revoked: list[dict[str, Any]] = self._request("DELETE", f"/api/v1/keys/{key}").json()[
            "items"
        ]
        return revoked

    # --- plumbing -----------------------------------------------------------------------------
    def _request(
        self,
        method: str,
        path: str,
        *,
        read_timeout: float | None = None,
        headers: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        """Send one request; ``kwargs`` are httpx's (content, json, params, files)."""
        kwargs.update(self._timeouts(read_timeout))
        try:
            response = self._http.request(
                method, path, headers={**self._auth, **(headers or {})}, **kwargs
            )
        except httpx.WriteError as exc:
            raise ConnectionFailed(
                f"{self.base_url} closed the connection while the request was sent ({exc}); "
                "an upload may exceed the server's limit (FERRY_MAX_UPLOAD_BYTES)",
                url=self.base_url,
            ) from exc
        except httpx.TransportError as exc:
            raise ConnectionFailed(
                f"cannot reach {self.base_url}: {exc}", url=self.base_url
            ) from exc
        if response.is_error:
            raise error_from_response(response)
        return response

    @contextmanager
    def _stream(
        self, method: str, path: str, *, read_timeout: float | None = None
    ) -> Iterator[httpx.Response]:
        """A streamed answer (downloads); errors are read whole and raised as FerryError."""
        extra = self._timeouts(read_timeout)
        try:
            with self._http.stream(method, path, headers=self._auth, **extra) as response:
                if response.is_error:
                    response.read()
                    raise error_from_response(response)
                yield response
        except httpx.TransportError as exc:
            raise ConnectionFailed(
                f"cannot reach {self.base_url}: {exc}", url=self.base_url
            ) from exc

    def _timeouts(self, read_timeout: float | None) -> dict[str, Any]:
        """httpx ``timeout=`` waiting ``read_timeout`` seconds for the answer, else nothing."""
        if read_timeout is None:
            return {}
        base = self._http.timeout
        timeout = httpx.Timeout(
            connect=base.connect, read=read_timeout, write=base.write, pool=base.pool
        )
        return {"timeout": timeout}


def _payload(data: Rows | Columns | pd.DataFrame) -> dict[str, object]:
    if _is_frame(data):
        from ferry.model.example import frame_to_split

        split = frame_to_split(data)
        rows = split["data"]
        return {"inputs": {c: [row[i] for row in rows] for i, c in enumerate(split["columns"])}}
    if isinstance(data, Mapping):
        return {"inputs": {str(k): list(v) for k, v in data.items()}}
    return {"instances": list(data)}


def _is_frame(data: object) -> bool:
    module = type(data).__module__
    return module.startswith("pandas") and hasattr(data, "columns")


def _model_info(data: object) -> ModelInfo:
    try:
        return ModelInfo.model_validate(data)
    except ValidationError as exc:
        raise FerryError(f"the server answered an unexpected model description: {exc}") from exc


# --- error answers -> FerryError -----------------------------------------------------------------
def error_from_response(response: httpx.Response) -> FerryError:
    """Rebuild the error a server answered: Ferry's shape, MLflow's, V2's, or plain text."""
    code, message, details = "http_error", "", {}
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):  # Ferry: {"error": {"code", "message", "details"}}
            code = str(error.get("code", code))
            message = str(error.get("message", ""))
            raw = error.get("details")
            details = {str(k): v for k, v in raw.items()} if isinstance(raw, dict) else {}
        elif isinstance(error, str):  # Open Inference V2: {"error": "<message>"}
            message = error
        elif "error_code" in body:  # MLflow: {"error_code", "message"}, Ferry adds ferry_code
            code = str(body.get("ferry_code", code))
            message = str(body.get("message", ""))
    if not message:
        message = f"HTTP {response.status_code} from {response.request.url}: {response.text[:200]}"
    error_cls = error_class(code)
    exc = error_cls(message)
    exc.details = details  # set after: a detail may be named like an __init__ argument
    if error_cls.code != code:
        exc.code = code  # an error this client does not know: keep the server's code
    return exc
