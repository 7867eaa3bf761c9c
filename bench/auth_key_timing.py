"""How long KeyStore.verify takes to refuse a key whose id is unknown, against one whose id is
known but whose secret is wrong (issue 13: a known id answered 60-70 us slower, so an attacker
could enumerate key ids). Run: PYTHONPATH=src python bench/auth_key_timing.py [rounds]."""

from __future__ import annotations

import contextlib
import statistics
import sys
import tempfile
import time
from pathlib import Path

from ferry.config.settings import Settings
from ferry.errors import Unauthorized
from ferry.security.keys import KeyStore


def median_us(store: KeyStore, token: str, rounds: int) -> float:
    samples = []
    for _ in range(rounds):
        started = time.perf_counter()
        with contextlib.suppress(Unauthorized):
            store.verify(token)
        samples.append((time.perf_counter() - started) * 1e6)
    return statistics.median(samples)


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 3000
    with tempfile.TemporaryDirectory() as folder:
        store = KeyStore.from_settings(Settings(home=Path(folder)))
        store.database.migrate()
        real = store.create("bench", ["predict:iris"])
        known = f"fry_{real.record.id}_{'x' * 43}"
        unknown = f"fry_0123456789abcdef_{'x' * 43}"
        for _ in range(3):  # interleaved, so drift in machine load hits both alike
            a = median_us(store, known, rounds)
            b = median_us(store, unknown, rounds)
            print(f"known id {a:7.1f} us   unknown id {b:7.1f} us   difference {a - b:+6.1f} us")
        store.database.close()


if __name__ == "__main__":
    main()
