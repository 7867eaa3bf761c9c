"""An S3-compatible bucket as artifact store (``s3://bucket/prefix``), through boto3.

Uploads and downloads go through boto3's managed transfers, so large files stream from and to
disk in multipart chunks. ``FERRY_S3_ENDPOINT_URL`` points at MinIO-style servers (path-style
addressing). Credentials come from boto3's usual chain (``AWS_ACCESS_KEY_ID``..., profiles, roles).
botocore's exceptions are turned into ``StorageError`` here, where they enter.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import boto3
from boto3.exceptions import S3TransferFailedError, S3UploadFailedError
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from ferry.errors import BlobNotFound, ConfigError, StorageError
from ferry.registry.records import BlobInfo

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

MIB = 1024 * 1024
COPY_IN_PLACE_LIMIT = 5 * 1024 * MIB  # CopyObject's largest object
_MISSING = {"404", "NoSuchKey", "NotFound"}


class S3Store:
    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        part_size: int = 16 * MIB,
        concurrency: int = 4,
    ) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.endpoint_url = endpoint_url
        config = Config(
            s3={"addressing_style": "path"} if endpoint_url else {},
            retries={"max_attempts": 5, "mode": "standard"},
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

    @classmethod
    def from_url(cls, url: str, *, endpoint_url: str | None = None) -> S3Store:
        parts = urlsplit(url)
        if not parts.netloc:
            raise ConfigError(f"{url!r} names no bucket: use s3://bucket/prefix", url=url)
        store = cls(parts.netloc, parts.path, endpoint_url=endpoint_url)
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
            raise StorageError(
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
        except (BotoCoreError, S3UploadFailedError, S3TransferFailedError) as exc:
            raise StorageError(f"S3 {action} of {key!r} failed: {exc}", key=key) from exc

    def put(self, key: str, source: Path, *, sha256: str | None = None) -> None:
        extra = {"Metadata": {"sha256": sha256}} if sha256 else None
        with self._errors("upload", key):
            self._client.upload_file(
                str(source), self.bucket, self._key(key), ExtraArgs=extra, Config=self._transfer
            )

    def get(self, key: str, target: Path) -> None:
        with self._errors("download", key):
            self._client.download_file(
                self.bucket, self._key(key), str(target), Config=self._transfer
            )

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
        self._client.close()


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


if TYPE_CHECKING:  # S3Store must keep satisfying the protocol
    from ferry.registry.artifacts import ArtifactStore

    _PROTOCOL: type[ArtifactStore] = S3Store
