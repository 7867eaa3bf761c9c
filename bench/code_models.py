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
"""

from __future__ import annotations

import argparse
import statistics
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--rows", default="1,100")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "predictor.py").write_text(IRIS)
        frame = load_iris(as_frame=True).frame.drop(columns="target")
        frame.head(5).to_csv(folder / "example.csv", index=False)
        save(f"{folder / 'predictor.py'}:Iris", folder / "bundle", example=folder / "example.csv")
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


if __name__ == "__main__":
    main()
