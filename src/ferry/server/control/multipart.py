"""A multipart/form-data body streamed to files on disk, with a size limit on the whole body.

Starlette's ``request.form()`` keeps parts in spooled files but has no total size limit and
holds every field in memory; uploads of model files need both bounds. The parser is fed in
batches of about a megabyte in a worker thread, so neither parsing nor disk writes block the
event loop, and memory stays at one batch whatever the upload's size.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING

import anyio.to_thread
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect, Request

from ferry.errors import InvalidRequest, MalformedBody, PayloadTooLarge, UnsupportedMediaType

if TYPE_CHECKING:
    from python_multipart.multipart import MultipartCallbacks

FORM_DATA = "multipart/form-data"
FEED_BYTES = 1024 * 1024
MAX_PARTS = 1000
MAX_HEADER_BYTES = 16 * 1024


@dataclass(frozen=True, slots=True)
class Part:
    """One part of the form, stored at ``path``."""

    name: str
    filename: str | None  # None for a plain field
    content_type: str
    path: Path
    size: int


@dataclass(slots=True)
class _Current:
    headers: dict[bytes, bytes] = field(default_factory=dict)
    header_name: bytes = b""
    header_value: bytes = b""
    name: str = ""
    filename: str | None = None
    path: Path | None = None
    handle: IO[bytes] | None = None
    size: int = 0


class _Receiver:
    """The parser's callbacks: each part's bytes go straight to its own file."""

    def __init__(self, boundary: bytes, folder: Path) -> None:
        self.folder = folder
        self.parts: list[Part] = []
        self.ended = False
        self.current = _Current()
        callbacks: MultipartCallbacks = {
            "on_part_begin": self._part_begin,
            "on_header_field": self._header_field,
            "on_header_value": self._header_value,
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._part_data,
            "on_part_end": self._part_end,
            "on_end": self._end,
        }
        self.parser = MultipartParser(boundary, callbacks)

    def feed(self, data: bytes) -> None:
        try:
            self.parser.write(data)
        except FormParserError as exc:
            raise MalformedBody(f"the multipart body is malformed: {exc}") from exc

    def finish(self) -> list[Part]:
        try:
            self.parser.finalize()
        except FormParserError as exc:
            raise MalformedBody(f"the multipart body is malformed: {exc}") from exc
        if not self.ended:
            raise MalformedBody("the multipart body ends before its closing boundary")
        return self.parts

    def close(self) -> None:
        if self.current.handle is not None:
            self.current.handle.close()
            self.current.handle = None

    # --- callbacks ----------------------------------------------------------------------------
    def _part_begin(self) -> None:
        if len(self.parts) >= MAX_PARTS:
            raise MalformedBody(f"the form has more than {MAX_PARTS} parts", limit=MAX_PARTS)
        self.current = _Current()

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self.current.header_name += data[start:end]
        self._check_header_size()

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        self.current.header_value += data[start:end]
        self._check_header_size()

    def _check_header_size(self) -> None:
        if len(self.current.header_name) + len(self.current.header_value) > MAX_HEADER_BYTES:
            raise MalformedBody(f"a part header is longer than {MAX_HEADER_BYTES} bytes")

    def _header_end(self) -> None:
        current = self.current
        current.headers[current.header_name.strip().lower()] = current.header_value.strip()
        current.header_name = current.header_value = b""

    def _headers_finished(self) -> None:
        current = self.current
        disposition, options = parse_options_header(current.headers.get(b"content-disposition"))
        if disposition != b"form-data" or b"name" not in options:
            raise MalformedBody(
                "every part needs a 'Content-Disposition: form-data; name=...' header"
            )
        current.name = _text(options[b"name"])
        if b"filename" in options:
            current.filename = _text(options[b"filename"])
        current.path = self.folder / f"part-{len(self.parts)}"
        current.handle = current.path.open("wb")

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        assert self.current.handle is not None
        self.current.handle.write(data[start:end])
        self.current.size += end - start

    def _part_end(self) -> None:
        current = self.current
        self.close()
        assert current.path is not None
        content_type = _text(current.headers.get(b"content-type", b"")).split(";", 1)[0]
        self.parts.append(
            Part(
                current.name,
                current.filename,
                content_type.strip().lower(),
                current.path,
                current.size,
            )
        )

    def _end(self) -> None:
        self.ended = True


async def receive_parts(request: Request, folder: Path, *, limit: int) -> list[Part]:
    """Every part of the request's multipart/form-data body, written under ``folder``.

    ``PayloadTooLarge`` as soon as the body passes ``limit`` bytes (before reading it when the
    Content-Length says so); ``MalformedBody`` for a body that is not valid multipart.
    """
    content_type = request.headers.get("content-type", "")
    kind, options = parse_options_header(content_type)
    if kind.decode("latin-1").lower() != FORM_DATA:
        raise UnsupportedMediaType(
            f"send the upload as {FORM_DATA}, not {content_type or 'no content type'!r}",
            content_type=content_type,
        )
    boundary = options.get(b"boundary")
    if not boundary:
        raise MalformedBody("the multipart content type has no boundary")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(
            f"the upload of {declared} bytes exceeds the limit of {limit} bytes", limit=limit
        )
    receiver = _Receiver(boundary, folder)
    try:
        size = 0
        batch = bytearray()
        async for chunk in _stream(request):
            size += len(chunk)
            if size > limit:
                raise PayloadTooLarge(f"the upload exceeds the limit of {limit} bytes", limit=limit)
            batch += chunk
            if len(batch) >= FEED_BYTES:
                await anyio.to_thread.run_sync(receiver.feed, bytes(batch))
                batch.clear()
        if batch:
            await anyio.to_thread.run_sync(receiver.feed, bytes(batch))
        return receiver.finish()
    finally:
        receiver.close()


async def _stream(request: Request) -> AsyncIterator[bytes]:
    try:
        async for chunk in request.stream():
            yield chunk
    except ClientDisconnect as exc:
        raise InvalidRequest("the client disconnected before the upload was complete") from exc


def _text(value: bytes) -> str:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return value.decode("latin-1")
