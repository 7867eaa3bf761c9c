"""Telemetry bundles: a site's monitoring summary, signed, for us to import on our side.

A bundle is a ``.tgz`` of flat JSON files plus ``manifest.json`` (the site, the window, and
each file's sha256 and size, as canonical JSON) and ``manifest.sig``, the hex HMAC-SHA256 of
the manifest's bytes under a key both sides share: the content's signature, which anyone
holding the key can check with the files unpacked. The archive is sealed too: its gzip header
carries, in an extra field standard tools skip, an HMAC-SHA256 of every other byte of the
file. Deflate has bits that do not change what a stream inflates to, so checking the files
alone would let a changed byte there pass unnoticed; the seal makes any changed, added or
dropped byte a rejection. Import checks the seal, then the manifest's signature, then every
file against the manifest, comparing in constant time; a rejected bundle changes nothing.
Bundles hold aggregates only; raw inputs need ``include_samples``.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import os
import socket
import struct
import tarfile
import tempfile
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ferry import __version__
from ferry.errors import ConfigError, InvalidRequest, TelemetryRejected

BUNDLE_FORMAT = 1
MANIFEST = "manifest.json"
SIGNATURE = "manifest.sig"
KEY_ENV = "FERRY_TELEMETRY_KEY"
MIN_KEY_BYTES = 16
MAX_BUNDLE_BYTES = 64 * 1024 * 1024  # unpacked; a summary is kilobytes
MAX_FILES = 64
# gzip magic, deflate, FEXTRA, mtime 0, best compression, OS unknown: what _gzip writes
GZIP_HEADER = b"\x1f\x8b\x08\x04\x00\x00\x00\x00\x02\xff"
# the extra field: XLEN, then one subfield "FS" (Ferry seal) of 32 bytes, the archive's HMAC
SEAL_FIELD = struct.pack("<H", 36) + b"FS" + struct.pack("<H", 32)
SEAL_CONTEXT = b"ferry telemetry archive\x00"  # keeps the two HMACs' messages apart


@dataclass(frozen=True, slots=True)
class Bundle:
    """A verified bundle's manifest and files."""

    manifest: dict[str, Any]
    files: dict[str, bytes]
    sha256: str  # of the .tgz as received: the same bundle imported twice is one import

    @property
    def site(self) -> str:
        return str(self.manifest["site"])

    def json(self, name: str) -> Any:
        return json.loads(self.files[name])


def load_key(key_file: Path | None = None) -> bytes:
    """The shared key from ``key_file`` (its bytes, surrounding whitespace dropped) or
    ``FERRY_TELEMETRY_KEY``."""
    if key_file is not None:
        try:
            key = key_file.read_bytes().strip()
        except OSError as exc:
            raise ConfigError(f"cannot read the telemetry key file {key_file}: {exc}") from exc
        origin = str(key_file)
    else:
        key = os.environ.get(KEY_ENV, "").strip().encode()
        origin = KEY_ENV
        if not key:
            raise ConfigError(f"no telemetry key: set {KEY_ENV} or pass --key-file")
    if len(key) < MIN_KEY_BYTES:
        raise ConfigError(f"the telemetry key in {origin} is shorter than {MIN_KEY_BYTES} bytes")
    return key


def default_site(configured: str | None) -> str:
    return configured or socket.gethostname()


def canonical(value: Any) -> bytes:
    """The one byte form of a JSON value: sorted keys, no spaces, UTF-8."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def sign(manifest: bytes, key: bytes) -> str:
    return hmac.new(key, manifest, hashlib.sha256).hexdigest()


def write_bundle(
    out: Path,
    files: dict[str, bytes],
    *,
    key: bytes,
    site: str,
    since: datetime,
    until: datetime,
    created_at: datetime | None = None,
) -> dict[str, Any]:
    """Write the signed bundle to ``out`` (atomically); returns its manifest."""
    for name in files:
        _check_name(name)
    manifest = {
        "format": BUNDLE_FORMAT,
        "site": site,
        "ferry_version": __version__,
        "created_at": (created_at or datetime.now(UTC)).isoformat(),
        "since": since.isoformat(),
        "until": until.isoformat(),
        "files": {
            name: {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
            for name, data in sorted(files.items())
        },
    }
    manifest_bytes = canonical(manifest)
    entries = {
        MANIFEST: manifest_bytes,
        SIGNATURE: sign(manifest_bytes, key).encode(),
        **files,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(prefix=f".{out.name}.", dir=out.parent)
    try:
        with os.fdopen(handle, "wb") as raw:
            raw.write(_gzip(_tar(entries), key))
        os.replace(temp, out)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    return manifest


def read_bundle(path: Path, key: bytes) -> Bundle:
    """Open and verify a bundle; ``TelemetryRejected`` says why one is refused."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InvalidRequest(f"cannot read {path}: {exc}", path=str(path)) from exc
    return verify_bundle(data, key)


def verify_bundle(data: bytes, key: bytes) -> Bundle:
    entries = _unpack(data, key)
    manifest_bytes = entries.pop(MANIFEST, None)
    signature = entries.pop(SIGNATURE, None)
    if manifest_bytes is None or signature is None:
        raise TelemetryRejected(f"the bundle has no {MANIFEST} or no {SIGNATURE}")
    expected = sign(manifest_bytes, key).encode()
    if not hmac.compare_digest(expected, signature.strip()):
        raise TelemetryRejected(
            "the bundle's signature does not match: it was changed, or signed with another key"
        )
    try:
        manifest = json.loads(manifest_bytes)
        listed: dict[str, dict[str, Any]] = manifest["files"]
        datetime.fromisoformat(manifest["since"])
        datetime.fromisoformat(manifest["until"])
        datetime.fromisoformat(manifest["created_at"])
        str(manifest["site"])
    except (ValueError, KeyError, TypeError) as exc:
        raise TelemetryRejected(f"the bundle's manifest is malformed: {exc}") from exc
    if manifest.get("format") != BUNDLE_FORMAT:
        raise TelemetryRejected(f"unknown bundle format {manifest.get('format')!r}")
    if set(listed) != set(entries):
        raise TelemetryRejected(
            "the bundle's files are not the ones its manifest lists",
            extra=sorted(set(entries) - set(listed)),
            missing=sorted(set(listed) - set(entries)),
        )
    for name, content in entries.items():
        digest = hashlib.sha256(content).hexdigest()
        if not hmac.compare_digest(digest, str(listed[name].get("sha256", ""))):
            raise TelemetryRejected(f"{name} does not match its hash in the manifest", file=name)
    return Bundle(manifest, entries, hashlib.sha256(data).hexdigest())


def _tar(entries: dict[str, bytes]) -> bytes:
    """The canonical tar stream of ``entries``: in order, fixed owner, mode and time."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as archive:
        for name, data in entries.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _seal(key: bytes, header: bytes, rest: bytes) -> bytes:
    return hmac.new(key, SEAL_CONTEXT + header + rest, hashlib.sha256).digest()


def _gzip(data: bytes, key: bytes) -> bytes:
    """One gzip member: GZIP_HEADER, the seal in its extra field, deflate, CRC and length."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    body = compressor.compress(data) + compressor.flush()
    rest = body + struct.pack("<II", zlib.crc32(data), len(data) & 0xFFFFFFFF)
    return GZIP_HEADER + SEAL_FIELD + _seal(key, GZIP_HEADER, rest) + rest


def _gunzip(data: bytes, key: bytes) -> bytes:
    """The tar stream of a sealed bundle; every byte of ``data`` is checked."""
    start = len(GZIP_HEADER) + len(SEAL_FIELD)
    if not data.startswith(GZIP_HEADER + SEAL_FIELD) or len(data) < start + 32:
        raise TelemetryRejected("not a telemetry bundle: its gzip header is not Ferry's")
    seal, rest = data[start : start + 32], data[start + 32 :]
    if not hmac.compare_digest(seal, _seal(key, GZIP_HEADER, rest)):
        raise TelemetryRejected(
            "the bundle's seal does not match: it was changed, or sealed with another key"
        )
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    try:
        content = inflater.decompress(rest, MAX_BUNDLE_BYTES + 1)
    except zlib.error as exc:
        raise TelemetryRejected(f"not a readable telemetry bundle: {exc}") from exc
    if len(content) > MAX_BUNDLE_BYTES:
        raise TelemetryRejected(f"the bundle unpacks to more than {MAX_BUNDLE_BYTES} bytes")
    expected = struct.pack("<II", zlib.crc32(content), len(content) & 0xFFFFFFFF)
    if not inflater.eof or inflater.unused_data != expected:
        raise TelemetryRejected("the bundle's gzip stream is truncated or its checksum is wrong")
    return content


def _unpack(data: bytes, key: bytes) -> dict[str, bytes]:
    """Every member of the archive, which must be a few small flat regular files."""
    stream = _gunzip(data, key)
    entries: dict[str, bytes] = {}
    try:
        with tarfile.open(fileobj=io.BytesIO(stream), mode="r:") as archive:
            for member in archive:
                if not member.isfile():
                    raise TelemetryRejected(f"{member.name!r} in the bundle is not a file")
                _check_name(member.name)
                if member.name in entries or len(entries) >= MAX_FILES:
                    raise TelemetryRejected(
                        f"{member.name!r}: a repeated name, or more than {MAX_FILES} files"
                    )
                extracted = archive.extractfile(member)
                assert extracted is not None  # a regular file
                entries[member.name] = extracted.read()
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise TelemetryRejected(f"not a readable telemetry bundle: {exc}") from exc
    return entries


def _check_name(name: str) -> None:
    if not name or "/" in name or "\\" in name or name.startswith(".") or len(name) > 128:
        raise TelemetryRejected(f"{name!r} is not a bundle file name (flat names only)")
