"""A folder as artifact store (``/path`` or ``file:///path``): temp file, fsync, rename."""

from __future__ import annotations

import hashlib
import os
import shutil
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from ferry.errors import BlobNotFound, BundleError, ConfigError, StorageError
from ferry.registry.records import BlobInfo

TEMP_MARKER = ".tmp-"
_CHUNK = 1024 * 1024


class LocalStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"cannot create the artifact folder {root}: {exc}") from exc

    @classmethod
    def from_url(cls, url: str, *, endpoint_url: str | None = None) -> LocalStore:
        parts = urlsplit(url)
        if parts.scheme == "file":
            if parts.netloc not in ("", "localhost"):
                raise ConfigError(f"{url!r}: file URLs must name a local path", url=url)
            return cls(Path(unquote(parts.path)))
        return cls(Path(url).expanduser())

    @property
    def url(self) -> str:
        return self.root.resolve().as_uri()

    def _path(self, key: str) -> Path:
        parts = key.split("/")
        if not key or key.startswith("/") or any(p in ("", ".", "..") for p in parts):
            raise StorageError(f"invalid artifact key {key!r}", key=key)
        return self.root.joinpath(*parts)

    def put(self, key: str, source: Path, *, sha256: str | None = None) -> None:
        path = self._path(key)
        temp = path.with_name(f".{path.name}{TEMP_MARKER}{uuid.uuid4().hex[:12]}")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            digest = hashlib.sha256()
            with source.open("rb") as src, temp.open("wb") as dst:
                while chunk := src.read(_CHUNK):
                    digest.update(chunk)
                    dst.write(chunk)
                dst.flush()
                os.fsync(dst.fileno())
            if sha256 is not None and digest.hexdigest() != sha256:
                raise BundleError(
                    f"{source} changed while it was stored: its sha256 is no longer {sha256}",
                    path=str(source),
                )
            os.replace(temp, path)
            _fsync_dir(path.parent)
        except OSError as exc:
            temp.unlink(missing_ok=True)
            raise StorageError(f"cannot store {key!r} in {self.root}: {exc}", key=key) from exc
        except BaseException:
            temp.unlink(missing_ok=True)
            raise

    def get(self, key: str, target: Path) -> None:
        path = self._path(key)
        try:
            with path.open("rb") as src, target.open("wb") as dst:
                shutil.copyfileobj(src, dst, _CHUNK)
        except FileNotFoundError as exc:
            if not path.exists():
                raise BlobNotFound(f"blob {key!r} is not in {self.root}", key=key) from exc
            raise StorageError(f"cannot write {target}: {exc}", key=key) from exc
        except OSError as exc:
            raise StorageError(f"cannot read {key!r} from {self.root}: {exc}", key=key) from exc

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def stat(self, key: str) -> BlobInfo | None:
        try:
            st = self._path(key).stat()
        except FileNotFoundError:
            return None
        return BlobInfo(key, st.st_size, datetime.fromtimestamp(st.st_mtime, UTC))

    def touch(self, key: str) -> bool:
        try:
            os.utime(self._path(key))
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise StorageError(f"cannot touch {key!r} in {self.root}: {exc}", key=key) from exc
        return True

    def delete(self, key: str) -> None:
        try:
            self._path(key).unlink(missing_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot delete {key!r} from {self.root}: {exc}", key=key) from exc

    def list(self, prefix: str = "") -> Iterator[BlobInfo]:
        for path, st in self._walk():
            key = path.relative_to(self.root).as_posix()
            if TEMP_MARKER not in path.name and key.startswith(prefix):
                yield BlobInfo(key, st.st_size, datetime.fromtimestamp(st.st_mtime, UTC))

    def sweep_incomplete(self, older_than: datetime) -> int:
        removed = 0
        cutoff = older_than.timestamp()
        for path, st in self._walk():
            if TEMP_MARKER in path.name and st.st_mtime < cutoff:
                path.unlink(missing_ok=True)
                removed += 1
        return removed

    def _walk(self) -> Iterator[tuple[Path, os.stat_result]]:
        for folder, _dirs, files in os.walk(self.root):
            for name in files:
                path = Path(folder) / name
                try:
                    yield path, path.stat()
                except FileNotFoundError:  # removed while we walked
                    continue

    def close(self) -> None:
        return None


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # some platforms cannot open folders
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


if TYPE_CHECKING:  # LocalStore must keep satisfying the protocol
    from ferry.registry.artifacts import ArtifactStore

    _PROTOCOL: type[ArtifactStore] = LocalStore
