"""An S3-compatible bucket as artifact store (``s3://bucket/prefix``), through boto3.

Uploads and downloads go through boto3's managed transfers, so large files stream from and to
disk in multipart chunks. ``FERRY_S3_ENDPOINT_URL`` points at MinIO-style servers (path-style
addressing). Credentials come from boto3's usual chain (``AWS_ACCESS_KEY_ID``..., profiles, roles).
botocore's exceptions are turned into ``StorageError`` here, where they enter.

Every call has a deadline (issue 13: with the S3 server frozen, an upload hung 245 s): each
request its connect and read timeouts and a bounded number of attempts, and each transfer
(all the parts of one blob) an overall deadline, past which it is cancelled and the caller gets
``StorageUnavailable`` (503). A cancelled transfer may still finish in the background once the
server answers again: its blob is then unreferenced, and ``ferry gc`` removes it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import boto3
from boto3.exceptions import S3TransferFailedError, S3UploadFailedError
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)
from s3transfer.futures import TransferFuture
from s3transfer.manager import TransferManager
from s3transfer.subscribers import BaseSubscriber

from ferry.config.settings import Settings, get_settings
from ferry.errors import BlobNotFound, ConfigError, StorageError, StorageUnavailable
from ferry.registry.records import BlobInfo

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

MIB = 1024 * 1024
COPY_IN_PLACE_LIMIT = 5 * 1024 * MIB  # CopyObject's largest object
_MISSING = {"404", "NoSuchKey", "NotFound"}
_UNREACHABLE = (
    ConnectTimeoutError,
    ReadTimeoutError,
    EndpointConnectionError,
    ConnectionClosedError,
)


@dataclass(frozen=True, slots=True)
class S3Deadlines:
    """How long S3 may take (``FERRY_S3_*``). A request that waits past ``read_seconds`` for a
    byte is retried, ``max_attempts`` times in all, so one call takes at most about
    ``max_attempts * (connect_seconds + read_seconds)``; a whole transfer at most
    ``transfer_seconds``."""

    connect_seconds: float = 5.0  # a loopback or LAN endpoint connects in milliseconds
    # a 16 MiB part is answered once S3 has it all: 30 s allows 0.5 MB/s, slower than any link
    read_seconds: float = 30.0
    max_attempts: int = 3  # botocore's "standard" retries: throttling and 5xx, with backoff
    # one blob, every part: 2 GiB (the upload limit) at 5 MB/s takes 430 s; 900 s is twice that
    transfer_seconds: float = 900.0

    @classmethod
    def from_settings(cls, settings: Settings) -> S3Deadlines:
        return cls(
            connect_seconds=settings.s3_connect_timeout_seconds,
            read_seconds=settings.s3_read_timeout_seconds,
            max_attempts=settings.s3_max_attempts,
            transfer_seconds=settings.s3_transfer_deadline_seconds,
        )


class _Finished(BaseSubscriber):
    """Sets an event when its transfer is done (completed, failed or cancelled)."""

    def __init__(self) -> None:
        self.event = threading.Event()

    def on_done(self, future: TransferFuture, **kwargs: Any) -> None:
        self.event.set()


class S3Store:
    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        part_size: int = 16 * MIB,
        concurrency: int = 4,
        deadlines: S3Deadlines | None = None,
    ) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.endpoint_url = endpoint_url
        self.deadlines = deadlines = deadlines or S3Deadlines()
        config = Config(
            s3={"addressing_style": "path"} if endpoint_url else {},
            connect_timeout=deadlines.connect_seconds,
            read_timeout=deadlines.read_seconds,
            retries={"max_attempts": deadlines.max_attempts, "mode": "standard"},
            # checksums only where S3 requires them: S3-compatible servers differ on the rest
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            max_pool_connections=max(10, concurrency * 2),
        )
        self._client: S3Client = boto3.session.Session().client(
            "s3", endpoint_url=endpoint_url, config=config
        )
        self._transfer = TransferConfig(
            multipart_threshold=part_size,
            multipart_chunksize=part_size,
            max_concurrency=concurrency,
            use_threads=True,
        )
        # made on first use: its worker threads must start in the process that uses them
        self._manager: TransferManager | None = None
        self._manager_lock = threading.Lock()

    @classmethod
    def from_url(cls, url: str, *, endpoint_url: str | None = None) -> S3Store:
        parts = urlsplit(url)
        if not parts.netloc:
            raise ConfigError(f"{url!r} names no bucket: use s3://bucket/prefix", url=url)
        deadlines = S3Deadlines.from_settings(get_settings())
        store = cls(parts.netloc, parts.path, endpoint_url=endpoint_url, deadlines=deadlines)
        store.check_bucket()
        return store

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"

    def check_bucket(self) -> None:
        try:
            self._client.head_bucket(Bucket=self.bucket)
        except ClientError as exc:
            if _code(exc) in _MISSING | {"NoSuchBucket"}:
                raise ConfigError(
                    f"S3 bucket {self.bucket!r} does not exist (endpoint "
                    f"{self.endpoint_url or 'AWS'})",
                    bucket=self.bucket,
                ) from exc
            raise StorageError(f"cannot open S3 bucket {self.bucket!r}: {exc}") from exc
        except BotoCoreError as exc:
            raise StorageUnavailable(
                f"cannot reach S3 at {self.endpoint_url or 'AWS'}: {exc}", bucket=self.bucket
            ) from exc

    def _key(self, key: str) -> str:
        if not key or key.startswith("/") or ".." in key.split("/"):
            raise StorageError(f"invalid artifact key {key!r}", key=key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def _relative(self, full: str) -> str:
        return full[len(self.prefix) + 1 :] if self.prefix else full

    @contextmanager
    def _errors(self, action: str, key: str) -> Iterator[None]:
        try:
            yield
        except ClientError as exc:
            if _code(exc) in _MISSING:
                raise BlobNotFound(f"blob {key!r} is not in {self.url}", key=key) from exc
            raise StorageError(f"S3 {action} of {key!r} failed: {exc}", key=key) from exc
        except _UNREACHABLE as exc:
            raise StorageUnavailable(
                f"the artifact store did not answer the {action} of {key!r} in time; try again "
                "later",
                key=key,
            ) from exc
        except (BotoCoreError, S3UploadFailedError, S3TransferFailedError) as exc:
            raise StorageError(f"S3 {action} of {key!r} failed: {exc}", key=key) from exc

    def put(self, key: str, source: Path, *, sha256: str | None = None) -> None:
        extra = {"Metadata": {"sha256": sha256}} if sha256 else None
        full = self._key(key)
        self._transfer_within_deadline(
            "upload",
            key,
            lambda manager, done: manager.upload(
                str(source), self.bucket, full, extra_args=extra, subscribers=[done]
            ),
        )

    def get(self, key: str, target: Path) -> None:
        full = self._key(key)
        self._transfer_within_deadline(
            "download",
            key,
            lambda manager, done: manager.download(
                self.bucket, full, str(target), subscribers=[done]
            ),
        )

    def _transfer_within_deadline(
        self,
        action: str,
        key: str,
        start: Callable[[TransferManager, _Finished], TransferFuture],
    ) -> None:
        """Run one managed transfer; cancel it and raise ``StorageUnavailable`` past the
        deadline (its threads then stop at their own read timeouts)."""
        done = _Finished()
        with self._errors(action, key):
            future = start(self._transfers(), done)
            if not done.event.wait(self.deadlines.transfer_seconds):
                future.cancel()
                raise StorageUnavailable(
                    f"the artifact store did not complete the {action} of {key!r} within "
                    f"{self.deadlines.transfer_seconds:g} s; try again later",
                    key=key,
                    limit_seconds=self.deadlines.transfer_seconds,
                )
            future.result()

    def _transfers(self) -> TransferManager:
        with self._manager_lock:
            if self._manager is None:
                self._manager = TransferManager(self._client, self._transfer)
            return self._manager

    def exists(self, key: str) -> bool:
        return self.stat(key) is not None

    def stat(self, key: str) -> BlobInfo | None:
        try:
            with self._errors("head", key):
                head = self._client.head_object(Bucket=self.bucket, Key=self._key(key))
        except BlobNotFound:
            return None
        return BlobInfo(key, head["ContentLength"], head["LastModified"].astimezone(UTC))

    def touch(self, key: str) -> bool:
        full = self._key(key)
        try:
            with self._errors("touch", key):
                head = self._client.head_object(Bucket=self.bucket, Key=full)
                if head["ContentLength"] > COPY_IN_PLACE_LIMIT:
                    return False  # too big to copy in place: the caller uploads it again
                self._client.copy_object(
                    Bucket=self.bucket,
                    Key=full,
                    CopySource={"Bucket": self.bucket, "Key": full},
                    MetadataDirective="REPLACE",  # a copy onto itself must change something
                    Metadata={**head.get("Metadata", {}), "touched": datetime.now(UTC).isoformat()},
                )
        except BlobNotFound:
            return False
        return True

    def delete(self, key: str) -> None:
        with self._errors("delete", key):
            self._client.delete_object(Bucket=self.bucket, Key=self._key(key))

    def list(self, prefix: str = "") -> Iterator[BlobInfo]:
        full_prefix = f"{self.prefix}/{prefix}" if self.prefix else prefix
        pages = self._client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=full_prefix
        )
        with self._errors("list", prefix or "/"):
            for page in pages:
                for item in page.get("Contents", []):
                    yield BlobInfo(
                        self._relative(item["Key"]),
                        item["Size"],
                        item["LastModified"].astimezone(UTC),
                    )

    def sweep_incomplete(self, older_than: datetime) -> int:
        removed = 0
        pages = self._client.get_paginator("list_multipart_uploads").paginate(
            Bucket=self.bucket, Prefix=f"{self.prefix}/" if self.prefix else ""
        )
        with self._errors("multipart sweep", self.prefix or "/"):
            for page in pages:
                for upload in page.get("Uploads", []):
                    if upload["Initiated"].astimezone(UTC) < older_than:
                        self._client.abort_multipart_upload(
                            Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                        )
                        removed += 1
        return removed

    def close(self) -> None:
        with self._manager_lock:
            manager, self._manager = self._manager, None
        if manager is not None:
            manager.shutdown(cancel=True)  # waits at most the read timeouts of stuck parts
        self._client.close()


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


if TYPE_CHECKING:  # S3Store must keep satisfying the protocol
    from ferry.registry.artifacts import ArtifactStore

    _PROTOCOL: type[ArtifactStore] = S3Store
