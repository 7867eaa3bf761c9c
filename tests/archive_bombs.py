"""Small archives that unpack to a lot, built in well under a second each (issue 13).

- ``sparse_bomb``: one PAX GNU-sparse (1.0) member that claims a 6 GiB file of which one byte
  is data: about 600 bytes gzipped; tarfile reads it back as 6 GiB, all but one byte zeros.
- ``zeros_bomb``: one member of 1 GiB of zeros, gzipped to about 1 MB. The gzip stream is one
  compressed MiB of zeros repeated (gzip readers accept concatenated members), so building it
  never compresses a GiB.
- ``entries_bomb``: 200,000 empty files, from one header template patched per entry.
"""

from __future__ import annotations

import gzip
import io
import tarfile
from pathlib import Path

MIB = 1024 * 1024
GIB = 1024 * MIB
BLOCK = tarfile.BLOCKSIZE


def _pad(data: bytes) -> bytes:
    return data + b"\0" * (-len(data) % BLOCK)


def sparse_bomb(path: Path, *, size: int = 6 * GIB, name: str = "model/weights.bin") -> Path:
    info = tarfile.TarInfo(f"model/GNUSparseFile.0/{name.rsplit('/', 1)[-1]}")
    sparse_map = _pad(f"1\n{size - 1}\n1\n".encode())
    data = sparse_map + b"x"
    info.size = len(data)
    info.pax_headers = {
        "GNU.sparse.major": "1",
        "GNU.sparse.minor": "0",
        "GNU.sparse.name": name,
        "GNU.sparse.realsize": str(size),
    }
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        tar.addfile(info, io.BytesIO(data))
    path.write_bytes(gzip.compress(buffer.getvalue(), 9))
    return path


def zeros_bomb(path: Path, *, size: int = GIB, name: str = "model/zeros.bin") -> Path:
    assert size % MIB == 0
    info = tarfile.TarInfo(name)
    info.size = size
    header = info.tobuf(tarfile.GNU_FORMAT)
    one_mib = gzip.compress(b"\0" * MIB, 9)
    with path.open("wb") as out:
        out.write(gzip.compress(header, 9))
        for _ in range(size // MIB):
            out.write(one_mib)
        out.write(gzip.compress(b"\0" * (2 * BLOCK), 9))  # the end-of-archive blocks
    return path


def entries_bomb(path: Path, *, count: int = 200_000) -> Path:
    template = bytearray(tarfile.TarInfo("f0000000").tobuf(tarfile.GNU_FORMAT))
    template[148:156] = b" " * 8  # the checksum is computed with its own field as spaces
    base = sum(template) - sum(b"f0000000")
    blocks = []
    for number in range(count):
        name = f"f{number:07d}".encode()
        header = bytearray(template)
        header[0:8] = name
        checksum = base + sum(name)
        header[148:156] = b"%06o\0 " % checksum
        blocks.append(bytes(header))
    blocks.append(b"\0" * (2 * BLOCK))
    path.write_bytes(gzip.compress(b"".join(blocks), 1))
    return path
