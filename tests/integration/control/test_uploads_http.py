"""Uploads over real HTTP with the Python client: every flavor's raw files become versions that
pull back as bundles answering like the original model; oversize uploads are refused."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import ferry.model
from ferry.client import Client
from ferry.errors import ConnectionFailed, PayloadTooLarge
from tests.flavor_cases import CASES, assert_same
from tests.integration.control.conftest import ControlServer, StartControl

pytestmark = pytest.mark.integration

# the cases users bring as files or folders (not in-memory estimators)
FILE_CASES = [
    "sklearn_joblib_file",
    "onnx_tensor_string_labels",
    "onnx_regressor",
    "xgboost_ubj_file",
    "lightgbm_text_file",
    "mlflow_sklearn_skops",
    "mlflow_sklearn_cloudpickle",
    "mlflow_onnx",
    "custom_predictor",
]


@pytest.mark.parametrize("case_name", FILE_CASES)
def test_raw_upload_pulls_back_answering_like_the_model(
    case_name: str,
    request: pytest.FixtureRequest,
    control_server: ControlServer,
    tmp_path: Path,
) -> None:
    case = CASES[case_name](request)
    assert isinstance(case.source, str | Path)
    code = []
    if case.flavor == "custom":
        code = [Path(str(case.source).rsplit(":", 1)[0]).parent / "assets"]
    sent: list[int] = []
    with Client(control_server.url) as client:
        version = client.register(
            case.source,  # type: ignore[arg-type]
            "m",
            example=case.example,
            code=code,
            trust=case.flavor == "custom",  # a custom class is code: refused without trust
            progress=lambda done, total: sent.append(done),
        )
        assert (version.version, version.flavor, version.created) == (1, case.flavor, True)
        assert sent
        folder = client.pull("m", tmp_path / "pulled")
    loaded = ferry.model.load(folder, trust=case.flavor == "custom")  # a class is code
    assert_same(loaded.predict(case.example), case.predictions, case.tolerance)
    if case.probabilities is not None:
        assert_same(loaded.predict_proba(case.example), case.probabilities, case.tolerance)


def test_oversize_upload_is_refused_and_stores_nothing(
    start_control: StartControl, tmp_path: Path, iris_bundle: Path
) -> None:
    server = start_control(FERRY_MAX_UPLOAD_BYTES=str(256 * 1024))
    big = tmp_path / "big.joblib"
    big.write_bytes(b"\0" * (1024 * 1024))
    with Client(server.url) as client:
        # the server refuses from the Content-Length, before reading the body: the client
        # either reads that 413 or sees the connection closed while it is still sending
        with pytest.raises((PayloadTooLarge, ConnectionFailed)):
            client.register(big, "iris")
        assert client.registered_models().total == 0
        assert client.register(iris_bundle, "iris").version == 1  # under the limit

    def chunks() -> Iterator[bytes]:
        boundary = "b0undary"
        yield (
            f'--{boundary}\r\nContent-Disposition: form-data; name="model"; '
            'filename="big.joblib"\r\n\r\n'
        ).encode()
        for _ in range(512):
            yield b"\0" * 1024
        yield f"\r\n--{boundary}--\r\n".encode()

    streamed = httpx.post(
        f"{server.url}/api/v1/models/iris/versions",
        content=chunks(),
        headers={"content-type": "multipart/form-data; boundary=b0undary"},
        timeout=30,
    )
    assert streamed.status_code == 413
    assert streamed.json()["error"]["code"] == "payload_too_large"
    with Client(server.url) as client:
        assert client.versions("iris").total == 1
    staging = server.home / "cache" / "uploads"
    assert not staging.exists() or list(staging.iterdir()) == []
