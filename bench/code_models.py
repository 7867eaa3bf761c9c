"""What the sandboxed model process costs a code model: in-process vs isolated.

    python bench/code_models.py [--requests 2000] [--rows 1,100]

A custom-class iris predictor (``predictor.py:Iris``, numpy on a DataFrame) is saved as a
bundle, then called two ways, each ``--requests`` times per batch size, one call at a time:

- ``in-process``: ``load_bundle`` in this process, as a worker loaded code models before;
- ``sandboxed``: ``load_version``, which starts ``ferry.server.serving.modelhost`` in the
  bubblewrap sandbox and sends each batch over its pipe (npy frames).

Both go through ``LoadedModel.predict_outputs`` (what the batcher calls), so the difference is
the pipe round trip plus encoding. Answers are checked equal first. Prints calls/s and the
p50/p99 latency per batch size, and the sandboxed process's start time (load + hello).

Then over HTTP (``--http-requests``, 0 skips it): the app ``ferry serve`` builds, in a uvicorn
process on a free loopback port, around the bundle loaded with ``load_bundle`` (in-process) and
with ``load_version`` (sandboxed); 1-row requests one at a time on a keep-alive connection.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from sklearn.datasets import load_iris

from ferry.model import save
from ferry.model.loaded import LoadedModel, load_bundle
from ferry.model.validation import batch_from_records
from ferry.server.serving.isolated import load_version

IRIS = """
import numpy as np


class Iris:
    def predict(self, frame):
        x = frame.to_numpy()
        return np.where(x[:, 2] < 2.5, 0, np.where(x[:, 3] < 1.75, 1, 2))
"""


def measure(model: LoadedModel, rows: int, requests: int) -> tuple[float, float, float]:
    frame = load_iris(as_frame=True).frame.drop(columns="target")
    records = frame.sample(rows, replace=True, random_state=0).to_dict("records")
    batch = batch_from_records(records, model.signature)
    for _ in range(50):  # warm up
        model.predict_outputs(batch, ["predictions"])
    latencies = []
    started = time.perf_counter()
    for _ in range(requests):
        begin = time.perf_counter()
        model.predict_outputs(batch, ["predictions"])
        latencies.append(time.perf_counter() - begin)
    elapsed = time.perf_counter() - started
    latencies.sort()
    p99 = latencies[int(len(latencies) * 0.99) - 1]
    return requests / elapsed, statistics.median(latencies) * 1e6, p99 * 1e6


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


SERVER = """
import sys, uvicorn
from ferry.config.settings import get_settings
from ferry.model.loaded import load_bundle
from ferry.server.app import create_app
from ferry.server.serving.isolated import load_version
loader = load_version if sys.argv[2] == "sandboxed" else load_bundle
from pathlib import Path
app = create_app(get_settings(), [loader(Path(sys.argv[1]))])
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[3]), log_level="warning")
"""


def measure_http(bundle: Path, where: str, requests: int) -> tuple[float, float, float]:
    """The bundle served in a uvicorn process: 1-row requests/s, p50 and p99 in microseconds."""
    port = free_port()
    server = subprocess.Popen(  # noqa: S603 - our own app
        [sys.executable, "-c", SERVER, str(bundle), where, str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    row = load_iris(as_frame=True).frame.drop(columns="target").head(1).to_dict("records")
    body = json.dumps({"instances": row})
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                connection.request("GET", "/readyz")
                if connection.getresponse().read() and time.monotonic() < deadline:
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        headers = {"Content-Type": "application/json"}
        latencies = []
        for index in range(requests + 50):
            begin = time.perf_counter()
            connection.request("POST", "/v1/models/iris/predict", body, headers)  # noqa: S113
            response = connection.getresponse()
            response.read()
            assert response.status == 200, response.status
            if index >= 50:  # the first 50 warm up
                latencies.append(time.perf_counter() - begin)
        latencies.sort()
        return (
            len(latencies) / sum(latencies),
            statistics.median(latencies) * 1e6,
            latencies[int(len(latencies) * 0.99) - 1] * 1e6,
        )
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(15)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--rows", default="1,100")
    parser.add_argument("--http-requests", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "predictor.py").write_text(IRIS)
        frame = load_iris(as_frame=True).frame.drop(columns="target")
        frame.head(5).to_csv(folder / "example.csv", index=False)
        source = f"{folder / 'predictor.py'}:Iris"
        save(source, folder / "bundle", example=folder / "example.csv", name="iris")
        inside = load_bundle(folder / "bundle")
        started = time.perf_counter()
        outside = load_version(folder / "bundle")
        start_seconds = time.perf_counter() - started
        check = batch_from_records(frame.to_dict("records"), inside.signature)
        np.testing.assert_array_equal(
            inside.predict_outputs(check, ["predictions"])["predictions"],
            outside.predict_outputs(check, ["predictions"])["predictions"],
        )
        header = f"{'rows':>5} {'where':<11} {'calls/s':>9} {'p50 us':>9} {'p99 us':>9}"
        print(header)  # noqa: T201
        for rows in (int(r) for r in args.rows.split(",")):
            for where, model in (("in-process", inside), ("sandboxed", outside)):
                rate, p50, p99 = measure(model, rows, args.requests)
                print(f"{rows:>5} {where:<11} {rate:>9.0f} {p50:>9.0f} {p99:>9.0f}")  # noqa: T201
        print(f"sandboxed process start (bwrap + import + load + hello): {start_seconds:.2f} s")  # noqa: T201
        if args.http_requests:
            print(f"\nHTTP, 1 row, 1 worker {'':<3} {'req/s':>9} {'p50 us':>9} {'p99 us':>9}")  # noqa: T201
            for where in ("in-process", "sandboxed"):
                rate, p50, p99 = measure_http(folder / "bundle", where, args.http_requests)
                print(f"{'':>5} {where:<18} {rate:>9.0f} {p50:>9.0f} {p99:>9.0f}")  # noqa: T201


if __name__ == "__main__":
    main()
