"""A registered version as a Python package: ``ferry-model-<name>`` with ``predict(rows)`` and
``load()``, and its upload to a private package index.

A scikit-learn model's wheel depends on the model's own requirements (plus numpy and pandas),
not on ferry-ml: a team that ships a model as a library should not pull a web server, a
database layer and Ferry's own pins into their application. It carries the bundle's files
verbatim and a small loader (``wheel_runtime.py``, copied in) that reads them. Other flavors
need Ferry's flavor code to load them the way the server does, so their wheels also depend on
``ferry-ml[<flavor>]`` (which must then be installable from the same index). The same bundle
gives byte-identical wheels: entries are sorted and dated 1980-01-01, whatever the clock says.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import re
import uuid
import zipfile
from dataclasses import dataclass
from pathlib import Path

from ferry import __version__
from ferry.errors import BundleError, ConnectionFailed, FlavorError, IndexUploadFailed
from ferry.model.bundle import verify_files
from ferry.model.manifest import MANIFEST_FILE, read_manifest

STANDALONE_FLAVORS = ("sklearn",)
# flavors the tiny loader does not read go through ferry-ml, with the extra each one needs
FERRY_EXTRAS: dict[str, str | None] = {
    "onnx": "onnx",
    "xgboost": "xgboost",
    "lightgbm": "lightgbm",
    "mlflow": "mlflow",
    "custom": None,
}
# what the loader itself imports besides the model's requirements
RUNTIME_REQUIREMENTS = ("numpy>=1.23", "pandas>=1.5")
REQUIRES_PYTHON = ">=3.10"
_EPOCH = (1980, 1, 1, 0, 0, 0)
_SEPARATORS = re.compile(r"[-_.]+")


@dataclass(frozen=True, slots=True)
class BuiltWheel:
    path: Path
    distribution: str  # ferry-model-iris
    package: str  # ferry_model_iris, the import name
    version: str
    sha256: str


def distribution_name(model: str) -> str:
    """``ferry-model-<name>``, normalized as package indexes compare names (PEP 503)."""
    return _SEPARATORS.sub("-", f"ferry-model-{model}").lower()


def package_name(model: str) -> str:
    return _SEPARATORS.sub("_", f"ferry-model-{model}").lower()


def build_wheel(bundle_dir: Path, out_dir: Path) -> BuiltWheel:
    """Build the wheel of the registered version in ``bundle_dir`` (as ``ferry pull`` writes
    it: its manifest names the model and version) into ``out_dir``."""
    manifest = read_manifest(bundle_dir)
    verify_files(bundle_dir, manifest.files)
    if manifest.version is None or not manifest.version.isdigit():
        raise BundleError(
            f"{bundle_dir} is not a registered version (its manifest has no version number); "
            "register it, then build from the registry: ferry package wheel NAME@ALIAS",
            path=str(bundle_dir),
        )
    if manifest.flavor not in STANDALONE_FLAVORS and manifest.flavor not in FERRY_EXTRAS:
        raise FlavorError(
            f"no wheel for flavor {manifest.flavor!r}; known: "
            f"{sorted([*STANDALONE_FLAVORS, *FERRY_EXTRAS])}",
            flavor=manifest.flavor,
        )
    if manifest.example is None or manifest.expected_output is None:
        raise BundleError(
            f"{manifest.name} version {manifest.version} has no input example and expected "
            "output: the wheel's predict could not be checked against it",
            path=str(bundle_dir),
        )
    from ferry.registry.bundles import content_sha256

    distribution = distribution_name(manifest.name)
    package = package_name(manifest.name)
    version = manifest.version
    digest = content_sha256(manifest)
    spec = {
        "name": manifest.name,
        "version": int(version),
        "sha256": digest,
        "flavor": manifest.flavor,
        "artifact": manifest.artifact,
        "options": manifest.flavor_options,
        "signature": manifest.signature.model_dump(mode="json"),
    }
    runtime = Path(__file__).with_name("wheel_runtime.py").read_bytes()
    entries: dict[str, bytes] = {
        f"{package}/__init__.py": _init_module(manifest.name, version, digest, package).encode(),
        f"{package}/_runtime.py": runtime,
        f"{package}/model.json": (json.dumps(spec, indent=2) + "\n").encode(),
        f"{package}/py.typed": b"",
        f"{package}/bundle/{MANIFEST_FILE}": (bundle_dir / MANIFEST_FILE).read_bytes(),
    }
    for entry in manifest.files:
        entries[f"{package}/bundle/{entry.path}"] = (bundle_dir / entry.path).read_bytes()
    requirements = [
        *manifest.requirements,
        *RUNTIME_REQUIREMENTS,
        *_ferry_requirement(manifest.flavor),
    ]
    info = f"{package}-{version}.dist-info"
    entries[f"{info}/METADATA"] = _metadata(distribution, version, manifest.name, requirements)
    entries[f"{info}/WHEEL"] = (
        f"Wheel-Version: 1.0\nGenerator: ferry {__version__}\nRoot-Is-Purelib: true\n"
        "Tag: py3-none-any\n"
    ).encode()
    entries[f"{info}/top_level.txt"] = f"{package}\n".encode()
    record = f"{info}/RECORD"
    lines = [f"{name},sha256={_b64_digest(data)},{len(data)}" for name, data in entries.items()]
    entries[record] = ("\n".join(sorted(lines) + [f"{record},,"]) + "\n").encode()
    path = out_dir / f"{package}-{version}-py3-none-any.whl"
    data = _zip(entries)
    _write_atomically(path, data)
    return BuiltWheel(path, distribution, package, version, hashlib.sha256(data).hexdigest())


def _ferry_requirement(flavor: str) -> list[str]:
    if flavor in STANDALONE_FLAVORS:
        return []
    extra = FERRY_EXTRAS[flavor]
    return [f"ferry-ml{f'[{extra}]' if extra else ''}>={__version__}"]


def _init_module(model: str, version: str, digest: str, package: str) -> str:
    return f'''"""{model} version {version} from the Ferry registry (sha256 {digest[:12]}...).

    import {package}
    {package}.predict(rows)        # rows: dicts, lists in column order, or a DataFrame
    {package}.load().columns       # the input columns, in order
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from ._runtime import Model

NAME = {model!r}
VERSION = {int(version)}
SHA256 = {digest!r}


@lru_cache(maxsize=1)
def load() -> Model:
    """The model, loaded on first use and kept for the life of the process."""
    return Model(Path(__file__).parent)


def predict(rows: Any) -> list[Any]:
    """One prediction per row."""
    return load().predict(rows)


def predict_proba(rows: Any) -> list[list[float]]:
    """Class probabilities per row, in the order of the signature's labels."""
    return load().predict_proba(rows)


__all__ = ["NAME", "SHA256", "VERSION", "Model", "load", "predict", "predict_proba"]
'''


def _metadata(distribution: str, version: str, model: str, requirements: list[str]) -> bytes:
    lines = [
        "Metadata-Version: 2.1",
        f"Name: {distribution}",
        f"Version: {version}",
        f"Summary: {model} version {version} from the Ferry registry: predict(rows) and load()",
        f"Requires-Python: {REQUIRES_PYTHON}",
        *(f"Requires-Dist: {requirement}" for requirement in requirements),
    ]
    return ("\n".join(lines) + "\n").encode()


def _b64_digest(data: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def _zip(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    # RECORD last, the rest sorted: the order wheel tools expect and the same every time
    names = sorted(name for name in entries if not name.endswith("/RECORD"))
    names += [name for name in entries if name.endswith("/RECORD")]
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in names:
            info = zipfile.ZipInfo(name, date_time=_EPOCH)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, entries[name])
    return buffer.getvalue()


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.parent / f".{path.name}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        temp.write_bytes(data)
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def upload_wheel(
    wheel: BuiltWheel,
    index_url: str,
    *,
    username: str | None = None,
    password: str | None = None,
    timeout: float = 120.0,
) -> None:
    """Publish the wheel with the upload API twine speaks (pypiserver, devpi, Nexus,
    Artifactory, PyPI's legacy endpoint). Credentials in the URL win over the arguments."""
    import httpx

    data = wheel.path.read_bytes()
    fields = {
        ":action": "file_upload",
        "protocol_version": "1",
        "name": wheel.distribution,
        "version": wheel.version,
        "filetype": "bdist_wheel",
        "pyversion": "py3",
        "metadata_version": "2.1",
        "sha256_digest": hashlib.sha256(data).hexdigest(),
        "md5_digest": hashlib.md5(data, usedforsecurity=False).hexdigest(),
    }
    url = httpx.URL(index_url)
    if url.username:
        username, password = url.username, url.password
        url = url.copy_with(username=None, password=None)
    auth = (username, password or "") if username else None
    files = {"content": (wheel.path.name, data, "application/octet-stream")}
    try:
        response = httpx.post(
            url, data=fields, files=files, auth=auth, timeout=timeout, follow_redirects=False
        )
    except httpx.HTTPError as exc:
        raise ConnectionFailed(
            f"cannot reach the package index {url}: {exc}", url=str(url)
        ) from exc
    if response.status_code >= 300:
        hint = {
            401: "the index wants credentials: set TWINE_USERNAME and TWINE_PASSWORD",
            403: "the index refused these credentials",
            409: f"{wheel.distribution} {wheel.version} is already on the index",
        }.get(response.status_code, response.text[:500].strip())
        raise IndexUploadFailed(
            f"the package index {url} answered {response.status_code}: {hint}",
            status=response.status_code,
            url=str(url),
        )
