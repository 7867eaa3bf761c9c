"""Bad requests get the right 4xx in Ferry's error shape, and change nothing in the store."""

from __future__ import annotations

import shutil
import textwrap
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import joblib
import orjson
import pytest
from sklearn.linear_model import LogisticRegression

from ferry.model.bundle import list_files
from ferry.model.manifest import MANIFEST_FILE, read_manifest
from tests.unit.server.control.harness import (
    API,
    Control,
    archive_bytes,
    running_control,
    tar_bytes,
)


@dataclass(frozen=True)
class Kit:
    bundle: Path  # the iris bundle, registered as iris/1
    other_bundle: Path  # same model, different content (not registered)
    model_file: Path  # iris as a raw joblib file
    example: Path  # iris rows as CSV
    tmp: Path


Send = Callable[[Control, Kit], httpx.Response]


@pytest.fixture(scope="module")
def kit(
    tmp_path_factory: pytest.TempPathFactory,
    iris_bundle: Path,
    iris_variants: list[Path],
    iris_model: LogisticRegression,
    iris_data: tuple[object, object],
) -> Kit:
    root = tmp_path_factory.mktemp("kit")
    model_file = root / "iris.joblib"
    joblib.dump(iris_model, model_file)
    X = iris_data[0]
    example = root / "example.csv"
    X.head(5).to_csv(example, index=False)  # type: ignore[attr-defined]
    return Kit(iris_bundle, iris_variants[0], model_file, example, root)


@pytest.fixture
def seeded(tmp_path: Path, kit: Kit) -> Iterator[Control]:
    with running_control(tmp_path, inspect_timeout_seconds=120.0) as control:
        control.registry.register(kit.bundle, "iris")
        control.registry.set_alias("iris", "production", 1)
        yield control


def post_files(name: str, files: list[tuple[str, tuple[str, bytes]]]) -> Send:
    return lambda c, k: c.http.post(f"{API}/models/{name}/versions", files=files)


def upload(name: str = "iris", **parts: Callable[[Kit], tuple[str, bytes]]) -> Send:
    def send(control: Control, kit: Kit) -> httpx.Response:
        files = [(part, make(kit)) for part, make in parts.items()]
        return control.http.post(f"{API}/models/{name}/versions", files=files)

    return send


def metadata(data: object) -> Callable[[Kit], tuple[str, bytes]]:
    return lambda kit: ("metadata.json", orjson.dumps(data))


def bundle_of(kit: Kit) -> tuple[str, bytes]:
    return ("bundle.tar.gz", archive_bytes(kit.other_bundle))


def model_file(kit: Kit) -> tuple[str, bytes]:
    return (kit.model_file.name, kit.model_file.read_bytes())


def tampered_bundle(kit: Kit) -> tuple[str, bytes]:
    """A file changed after the manifest recorded its sha256."""
    copy = kit.tmp / "tampered"
    if not copy.exists():
        shutil.copytree(kit.other_bundle, copy)
        with (copy / "model" / "model.joblib").open("ab") as handle:
            handle.write(b"\0")
    return ("bundle.tar.gz", archive_bytes(copy))


def wrong_expected_output(kit: Kit) -> tuple[str, bytes]:
    """Checksums fine, but the stored expected answers are not what the model answers."""
    copy = kit.tmp / "wrong-expected"
    if not copy.exists():
        shutil.copytree(kit.other_bundle, copy)
        expected = orjson.loads((copy / "expected.json").read_bytes())
        expected["predictions"] = [(label + 1) % 3 for label in expected["predictions"]]
        (copy / "expected.json").write_bytes(orjson.dumps(expected))
        manifest = read_manifest(copy)
        manifest.model_copy(update={"files": list_files(copy)}).dump(copy / MANIFEST_FILE)
    return ("bundle.tar.gz", archive_bytes(copy))


def custom(source: str) -> Send:
    code = textwrap.dedent(source).encode()

    def send(control: Control, kit: Kit) -> httpx.Response:
        files = [
            ("code", ("predictor.py", code)),
            ("example", (kit.example.name, kit.example.read_bytes())),
            ("metadata", ("m.json", orjson.dumps({"entrypoint": "predictor.py:Model"}))),
            ("trust", (None, b"true")),  # code: refused before the inspector without it
        ]
        return control.http.post(f"{API}/models/iris/versions", files=files)

    return send


SLOW_LOAD = """
import time

class Model:
    def load(self, model_dir):
        time.sleep(60)

    def predict(self, frame):
        return frame.iloc[:, 0]
"""
CRASH_ON_IMPORT = """
import os
os._exit(3)
"""


def raw(method: str, path: str, **kwargs: object) -> Send:
    return lambda c, k: c.http.request(method, f"{API}{path}", **kwargs)  # type: ignore[arg-type]


BOUNDARY = "ferry-test-boundary"
MULTIPART = {"content-type": f"multipart/form-data; boundary={BOUNDARY}"}
TRUNCATED = (
    f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="model"; filename="m.pkl"\r\n\r\n'
    "partial bytes"
).encode()

CASES: dict[str, tuple[Send, int, str]] = {
    # --- lookups
    "unknown model": (raw("GET", "/models/nope"), 404, "model_not_found"),
    "unknown version": (raw("GET", "/models/iris/versions/9"), 404, "version_not_found"),
    "versions of unknown model": (raw("GET", "/models/nope/versions"), 404, "model_not_found"),
    "lineage of unknown version": (
        raw("GET", "/models/iris/versions/9/lineage"),
        404,
        "version_not_found",
    ),
    "download unknown version": (
        raw("GET", "/models/iris/versions/9/download"),
        404,
        "version_not_found",
    ),
    "version not a number": (raw("GET", "/models/iris/versions/one"), 400, "invalid_request"),
    "version zero": (raw("GET", "/models/iris/versions/0"), 400, "invalid_request"),
    # numbers past the columns' integers overflowed the driver: 500 (found by schemathesis)
    "profile of a huge version": (
        raw("GET", f"/models/iris/versions/{2**70}/profile"),
        400,
        "invalid_request",
    ),
    "drift of a huge version": (
        raw("POST", f"/models/iris/versions/{2**70}/drift", json={"rows": [{"a": 1}]}),
        400,
        "invalid_request",
    ),
    "huge drift report id": (raw("GET", f"/drift/{2**70}"), 400, "invalid_request"),
    "huge drift report id, html": (
        raw("GET", f"/drift/{2**70}/report.html"),
        400,
        "invalid_request",
    ),
    "drift report id zero": (raw("GET", "/drift/0"), 400, "invalid_request"),
    "unknown alias": (raw("GET", "/models/iris/aliases/staging"), 404, "alias_not_found"),
    "delete unknown alias": (raw("DELETE", "/models/iris/aliases/staging"), 404, "alias_not_found"),
    # --- names
    "name with ..": (raw("GET", "/models/ir..is"), 400, "invalid_name"),
    "upload name with ..": (upload("ir..is", bundle=bundle_of), 400, "invalid_name"),
    "upload name with /": (upload("team%2Firis", bundle=bundle_of), 400, "invalid_name"),
    "upload name with ./..": (upload("iris%2F..", bundle=bundle_of), 400, "invalid_name"),
    "create model name with /": (
        raw("POST", "/models", json={"name": "a/b"}),
        400,
        "invalid_name",
    ),
    "alias all digits": (
        raw("PUT", "/models/iris/aliases/123", json={"version": 1}),
        400,
        "invalid_name",
    ),
    # --- writes that contradict the store
    "model exists": (raw("POST", "/models", json={"name": "iris"}), 409, "model_exists"),
    "alias to missing version": (
        raw("PUT", "/models/iris/aliases/production", json={"version": 7}),
        404,
        "version_not_found",
    ),
    "alias on unknown model": (
        raw("PUT", "/models/nope/aliases/production", json={"version": 1}),
        404,
        "model_not_found",
    ),
    "metrics on missing version": (
        raw("POST", "/models/iris/versions/4/metrics", json={"metrics": {"acc": 1.0}}),
        404,
        "version_not_found",
    ),
    "patch unknown model": (
        raw("PATCH", "/models/nope", json={"description": "x"}),
        404,
        "model_not_found",
    ),
    "delete unknown model": (raw("DELETE", "/models/nope"), 404, "model_not_found"),
    # --- JSON bodies
    "body not JSON": (
        raw(
            "PUT",
            "/models/iris/aliases/production",
            content=b"{nope",
            headers={"content-type": "application/json"},
        ),
        400,
        "malformed_body",
    ),
    "body field missing": (
        raw("PUT", "/models/iris/aliases/production", json={}),
        400,
        "invalid_request",
    ),
    "body unknown field": (
        raw("PATCH", "/models/iris", json={"colour": "blue"}),
        400,
        "invalid_request",
    ),
    "metric not a number": (
        raw("POST", "/models/iris/versions/1/metrics", json={"metrics": {"acc": "high"}}),
        400,
        "invalid_request",
    ),
    "bad tag key": (
        raw("PATCH", "/models/iris/versions/1", json={"tags": {"bad key": "x"}}),
        400,
        "invalid_name",
    ),
    # --- query parameters
    "limit zero": (raw("GET", "/models", params={"limit": 0}), 400, "invalid_request"),
    "limit too big": (raw("GET", "/audit", params={"limit": 5000}), 400, "invalid_request"),
    "negative offset": (
        raw("GET", "/models/iris/aliases", params={"offset": -1}),
        400,
        "invalid_request",
    ),
    "bad metric filter": (
        raw("GET", "/models/iris/versions", params={"metric": "acc~0.9"}),
        400,
        "invalid_request",
    ),
    # --- multipart framing
    "upload as JSON": (
        raw("POST", "/models/iris/versions", json={"bundle": "x"}),
        415,
        "unsupported_media_type",
    ),
    "multipart without boundary": (
        raw(
            "POST",
            "/models/iris/versions",
            content=b"x",
            headers={"content-type": "multipart/form-data"},
        ),
        400,
        "malformed_body",
    ),
    "multipart truncated": (
        raw("POST", "/models/iris/versions", content=TRUNCATED, headers=MULTIPART),
        400,
        "malformed_body",
    ),
    "multipart garbage": (
        raw("POST", "/models/iris/versions", content=b"\x00" * 64, headers=MULTIPART),
        400,
        "malformed_body",
    ),
    # --- which parts
    "no parts": (upload(metadata=metadata({})), 400, "invalid_request"),
    "unknown part": (upload(bundle=bundle_of, weights=model_file), 400, "invalid_request"),
    "bundle and model": (upload(bundle=bundle_of, model=model_file), 400, "invalid_request"),
    "two bundles": (
        lambda c, k: c.http.post(
            f"{API}/models/iris/versions",
            files=[("bundle", bundle_of(k)), ("bundle", bundle_of(k))],
        ),
        400,
        "invalid_request",
    ),
    "bundle with example": (
        upload(bundle=bundle_of, example=lambda k: ("x.csv", k.example.read_bytes())),
        400,
        "invalid_request",
    ),
    "code without entrypoint": (
        upload(model=model_file, code=lambda k: ("predictor.py", b"class A: pass\n")),
        400,
        "invalid_request",
    ),
    "entrypoint file not sent": (
        upload(
            code=lambda k: ("other.py", b"class Model: pass\n"),
            metadata=metadata({"entrypoint": "predictor.py:Model"}),
        ),
        400,
        "invalid_request",
    ),
    "code path escaping": (
        upload(
            code=lambda k: ("../predictor.py", b"class Model: pass\n"),
            metadata=metadata({"entrypoint": "predictor.py:Model"}),
        ),
        400,
        "invalid_request",
    ),
    "model without file name": (
        lambda c, k: c.http.post(
            f"{API}/models/iris/versions", files={"model": (None, b"just text, no file name")}
        ),
        400,
        "invalid_request",
    ),
    "example neither csv nor json": (
        upload(model=model_file, example=lambda k: ("rows.xlsx", b"PK")),
        400,
        "invalid_request",
    ),
    "requirements with a pip option": (
        upload(
            model=model_file,
            requirements=lambda k: ("requirements.txt", b"--extra-index-url http://evil\n"),
        ),
        400,
        "invalid_request",
    ),
    # --- metadata
    "metadata not JSON": (
        upload(bundle=bundle_of, metadata=lambda k: ("m.json", b"{oops")),
        400,
        "invalid_request",
    ),
    "metadata unknown field": (
        upload(bundle=bundle_of, metadata=metadata({"aliass": "production"})),
        400,
        "invalid_request",
    ),
    "metadata alias all digits": (
        upload(bundle=bundle_of, metadata=metadata({"alias": "42"})),
        400,
        "invalid_name",
    ),
    "metadata metric not finite": (
        upload(bundle=bundle_of, metadata=lambda k: ("m.json", b'{"metrics": {"acc": NaN}}')),
        400,
        "invalid_request",
    ),
    "metadata unknown flavor": (
        upload(model=model_file, metadata=metadata({"flavor": "tensorflow"})),
        400,
        "invalid_request",
    ),
    "metadata bad entrypoint": (
        upload(
            code=lambda k: ("predictor.py", b""), metadata=metadata({"entrypoint": "predictor"})
        ),
        400,
        "invalid_request",
    ),
    "missing parent": (
        upload(bundle=bundle_of, metadata=metadata({"parent": 5})),
        404,
        "version_not_found",
    ),
    "parent in unknown model": (
        upload(bundle=bundle_of, metadata=metadata({"parent": {"model": "nope", "version": 1}})),
        404,
        "model_not_found",
    ),
    "parent of a first upload": (
        upload("fresh", bundle=bundle_of, metadata=metadata({"parent": 1})),
        404,
        "version_not_found",
    ),
    "existing model only": (
        upload("fresh", bundle=bundle_of, metadata=metadata({"create_model": False})),
        404,
        "model_not_found",
    ),
    # --- content that is not a usable model
    "corrupt model file": (
        upload(model=lambda k: ("model.joblib", b"this is not a pickle")),
        422,
        "unsafe_model",  # the pickle scanner refuses what it cannot parse, before any load
    ),
    "unknown model kind": (
        upload(model=lambda k: ("model.h5", b"\x89HDF")),
        422,
        "flavor_error",
    ),
    "bundle not an archive": (
        upload(bundle=lambda k: ("bundle.tar.gz", b"not a tar file")),
        422,
        "bundle_error",
    ),
    "bundle without manifest": (
        upload(bundle=lambda k: ("b.tar.gz", tar_bytes({"model/model.joblib": b"x"}))),
        422,
        "bundle_error",
    ),
    "bundle escaping its folder": (
        upload(bundle=lambda k: ("b.tar.gz", tar_bytes({"../evil.txt": b"x"}))),
        422,
        "bundle_error",
    ),
    "bundle checksum mismatch": (upload(bundle=tampered_bundle), 422, "bundle_error"),
    "bundle answers differ from its expected output": (
        upload(bundle=wrong_expected_output),
        422,
        "bundle_error",
    ),
    "example that does not fit the model": (
        upload(model=model_file, example=lambda k: ("e.csv", b"a,b\n1,2\n")),
        422,
        "missing_column",
    ),
    "model that kills its process": (custom(CRASH_ON_IMPORT), 422, "flavor_error"),
}


@pytest.mark.parametrize(("send", "status", "code"), CASES.values(), ids=CASES.keys())
def test_bad_request_changes_nothing(
    seeded: Control, kit: Kit, send: Send, status: int, code: str
) -> None:
    before = seeded.snapshot()
    answer = send(seeded, kit)
    assert answer.status_code == status, answer.text
    error = answer.json()["error"]
    assert error["code"] == code, error["message"]
    assert error["message"]
    assert isinstance(error["details"], dict)
    assert seeded.snapshot() == before
    assert seeded.staging_leftovers() == []
    assert seeded.registry.resolve("iris@production").version == 1


def test_a_model_that_loads_too_slowly_is_stopped(tmp_path: Path, kit: Kit) -> None:
    with running_control(tmp_path, inspect_timeout_seconds=2.0) as control:
        before = control.snapshot()
        started = time.monotonic()
        answer = custom(SLOW_LOAD)(control, kit)
        assert time.monotonic() - started < 30  # not the 60 s the model would sleep
        assert answer.status_code == 422
        assert answer.json()["error"]["code"] == "flavor_error"
        assert "longer than 2 s" in answer.json()["error"]["message"]
        assert control.snapshot() == before
        assert control.staging_leftovers() == []


def test_errors_name_the_wrong_field(seeded: Control, kit: Kit) -> None:
    answer = upload(bundle=bundle_of, metadata=metadata({"metrics": {"acc": "x"}}))(seeded, kit)
    assert answer.json()["error"]["details"]["field"] == "metadata.metrics.acc"
    answer = raw("GET", "/models/iris/versions/one")(seeded, kit)
    assert answer.json()["error"]["details"]["field"] == "version"


def test_inspector_errors_hide_server_paths(seeded: Control, kit: Kit) -> None:
    answer = upload(model=lambda k: ("model.joblib", b"this is not a pickle"))(seeded, kit)
    assert str(seeded.root) not in answer.text


def test_oversize_upload_is_413(tmp_path: Path, kit: Kit) -> None:
    with running_control(tmp_path, max_upload_bytes=64 * 1024) as control:
        before = control.snapshot()
        big = ("big.joblib", b"\0" * (100 * 1024))
        declared = control.http.post(f"{API}/models/iris/versions", files={"model": big})
        assert declared.status_code == 413
        assert declared.json()["error"]["code"] == "payload_too_large"

        def chunks() -> Iterator[bytes]:  # no Content-Length: the limit applies while reading
            yield (
                f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="model"; '
                'filename="big.joblib"\r\n\r\n'
            ).encode()
            for _ in range(100):
                yield b"\0" * 1024
            yield f"\r\n--{BOUNDARY}--\r\n".encode()

        streamed = control.http.post(
            f"{API}/models/iris/versions", content=chunks(), headers=MULTIPART
        )
        assert streamed.status_code == 413
        assert streamed.json()["error"]["code"] == "payload_too_large"
        assert control.snapshot() == before
        assert control.staging_leftovers() == []
        small = control.upload("iris", bundle=kit.bundle)  # under the limit: accepted
        assert small.status_code == 201, small.text
