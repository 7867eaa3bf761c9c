"""CPU per prediction request, in process: Ferry's three protocols beside a minimal app.

    PYTHONPATH=src python bench/cpu.py [--requests 2000] [--rounds 5] [--profile native]

No sockets, no HTTP parser, no load generator: each request is one raw ASGI call of the
real app (``create_app`` around the bench's iris model, lifespan run), so what is measured
is Ferry's own per-request work (routing, decoding, validation, the model, encoding,
metrics) and nothing the machine's other load or the network adds. CPU time is
``time.process_time`` (every thread of the process: the batcher's predict thread too),
divided by ``--requests``; each round measures every target once, the order rotated from
round to round, and the table shows the median (min-max) over ``--rounds``.

The model is the peer benchmark's iris ``LogisticRegression(max_iter=1000)`` fitted on a
DataFrame (so it has feature names, as users' models do), saved as a Ferry bundle. Targets:

- ``floor``: the peers' minimal Starlette app (``../shared/bench/peers/servers/floor_app.py``:
  orjson, ``np.asarray``, ``model.predict``), on the same model, in the same process;
- ``native``: ``POST /v1/models/iris/predict`` ``{"instances": [[4 numbers]]}``;
- ``mlflow``: ``POST /invocations`` ``{"inputs": [[4 numbers]]}`` (the peers' payload);
- ``v2``: ``POST /v2/models/iris/infer``, one ``[1, 4]`` FP64 tensor (the peers' payload);
- ``v2-cols``: the same row as four named ``[1]`` FP64 tensors, one per column;
- ``v2-label``: ``v2`` asking for the ``predictions`` output only: V2 answers every output
  when a request names none (Triton's and the spec's rule), which for a classifier is a
  second model call (``predict_proba``) the other protocols do not make;
- ``model``: the estimator's own ``predict`` on a 1x4 array, no server (the floor's model
  call; Ferry calls the same estimator the same way, see ``model/flavors/sklearn.py``).

Every target's answer is checked against ``model.predict`` before anything is timed.
``--profile TARGET`` runs cProfile over that target's requests and prints the top functions.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

ROW = [5.1, 3.5, 1.4, 0.2]
COLUMNS = ["sepal_length", "sepal_width", "petal_length", "petal_width"]

Message = dict[str, Any]
ASGI = Callable[
    [Message, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]],
    Awaitable[None],
]


class Target:
    """One request, sent again and again to one ASGI app."""

    def __init__(
        self, name: str, app: ASGI, path: str, body: object, extract: Callable[[Any], Any]
    ):
        self.name, self.app, self.extract = name, app, extract
        self.body = orjson.dumps(body)
        headers = [
            (b"host", b"bench"),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(self.body)).encode()),
        ]
        self.scope: Message = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "root_path": "",
            "query_string": b"",
            "headers": headers,
            "client": ("127.0.0.1", 40000),
            "server": ("127.0.0.1", 8000),
        }

    async def call(self) -> tuple[int, bytes]:
        status = 0
        chunks: list[bytes] = []
        sent = False

        async def receive() -> Message:
            nonlocal sent
            if sent:
                return {"type": "http.disconnect"}
            sent = True
            return {"type": "http.request", "body": self.body, "more_body": False}

        async def send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        await self.app(dict(self.scope), receive, send)
        return status, b"".join(chunks)

    async def run(self, n: int) -> None:
        call = self.call
        for _ in range(n):
            await call()


class ModelTarget:
    """The estimator's own predict on one 1x4 row: the part no server can save."""

    def __init__(self, estimator: LogisticRegression) -> None:
        self.name = "model"
        self.estimator = estimator
        self.row = np.asarray([ROW], dtype=np.float64)

    async def run(self, n: int) -> None:
        predict, row = self.estimator.predict, self.row
        for _ in range(n):
            predict(row)


async def lifespan(app: ASGI) -> Callable[[], Awaitable[None]]:
    """Run ``app``'s lifespan startup; returns the coroutine function that shuts it down."""
    inbox: asyncio.Queue[Message] = asyncio.Queue()
    outbox: asyncio.Queue[Message] = asyncio.Queue()
    task = asyncio.ensure_future(
        app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, inbox.get, outbox.put)
    )
    await inbox.put({"type": "lifespan.startup"})
    started = await outbox.get()
    if started["type"] != "lifespan.startup.complete":
        raise RuntimeError(f"lifespan startup failed: {started}")

    async def shutdown() -> None:
        await inbox.put({"type": "lifespan.shutdown"})
        await outbox.get()
        await task

    return shutdown


def floor_app(estimator: LogisticRegression) -> ASGI:
    """The peers' floor app, verbatim but for the model it is handed."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    async def predict(request: Request) -> Response:
        body = orjson.loads(await request.body())
        X = np.asarray(body["instances"], dtype=np.float64)
        return Response(
            orjson.dumps({"predictions": estimator.predict(X).tolist()}),
            media_type="application/json",
        )

    return Starlette(routes=[Route("/predict", predict, methods=["POST"])])


def targets(ferry_app: ASGI, floor: ASGI) -> list[Target]:
    v2_matrix = {"inputs": [{"name": "predict", "shape": [1, 4], "datatype": "FP64", "data": ROW}]}
    v2_columns = {
        "inputs": [
            {"name": name, "shape": [1], "datatype": "FP64", "data": [value]}
            for name, value in zip(COLUMNS, ROW, strict=True)
        ]
    }
    v2_label = {**v2_matrix, "outputs": [{"name": "predictions"}]}
    v2_out = lambda answer: answer["outputs"][0]["data"]  # noqa: E731
    return [
        Target("floor", floor, "/predict", {"instances": [ROW]}, lambda a: a["predictions"]),
        Target(
            "native",
            ferry_app,
            "/v1/models/iris/predict",
            {"instances": [ROW]},
            lambda a: a["predictions"],
        ),
        Target("mlflow", ferry_app, "/invocations", {"inputs": [ROW]}, lambda a: a["predictions"]),
        Target("v2", ferry_app, "/v2/models/iris/infer", v2_matrix, v2_out),
        Target("v2-cols", ferry_app, "/v2/models/iris/infer", v2_columns, v2_out),
        Target("v2-label", ferry_app, "/v2/models/iris/infer", v2_label, v2_out),
    ]


async def check(target: Target, want: list[Any]) -> None:
    status, body = await target.call()
    if status != 200:
        raise SystemExit(f"{target.name}: status {status}: {body[:500]!r}")
    got = target.extract(orjson.loads(body))
    if [float(v) for v in got] != [float(v) for v in want]:
        raise SystemExit(f"{target.name}: answered {got}, the model says {want}")


async def measure(all_targets: list[Any], requests: int, rounds: int) -> dict[str, list[float]]:
    cpu: dict[str, list[float]] = {t.name: [] for t in all_targets}
    for target in all_targets:  # warm-up: caches, lazy imports, the batcher's thread
        await target.run(max(requests // 10, 50))
    for round_number in range(rounds):
        shift = round_number % len(all_targets)
        for target in all_targets[shift:] + all_targets[:shift]:
            start = time.process_time()
            await target.run(requests)
            cpu[target.name].append((time.process_time() - start) / requests * 1e6)
    return cpu


def report(cpu: dict[str, list[float]]) -> str:
    floor = statistics.median(cpu["floor"])
    lines = [
        "| target | CPU µs/request, median (min-max) | x floor |",
        "| --- | --- | --- |",
    ]
    for name, values in cpu.items():
        median = statistics.median(values)
        spread = f"{min(values):.0f}-{max(values):.0f}"
        lines.append(f"| {name} | {median:.0f} ({spread}) | {median / floor:.2f} |")
    return "\n".join(lines)


async def main(args: argparse.Namespace) -> None:
    from ferry.config.settings import Settings
    from ferry.model import load, save
    from ferry.server.app import create_app

    X, y = load_iris(return_X_y=True, as_frame=True)
    X.columns = COLUMNS
    estimator = LogisticRegression(max_iter=1000).fit(X, y)
    with tempfile.TemporaryDirectory(prefix="ferry-bench-cpu-") as tmp:
        bundle = Path(tmp) / "iris"
        save(estimator, bundle, example=X.head(5), name="iris", flavor="sklearn")
        app = create_app(Settings(home=Path(tmp) / "home"), [load(bundle)])
        shutdown = await lifespan(app)
        try:
            want = estimator.predict(pd.DataFrame([ROW], columns=COLUMNS)).tolist()
            bare = LogisticRegression(max_iter=1000).fit(X.to_numpy(), y)  # the floor's model
            assert bare.predict(np.asarray([ROW])).tolist() == want
            served = targets(app, floor_app(bare))
            for target in served:
                await check(target, want)
            chosen = [t for t in served if not args.only or t.name in args.only]
            if args.profile:
                profiled = next(t for t in served if t.name == args.profile)
                await profiled.run(200)
                profiler = cProfile.Profile()
                profiler.enable()
                await profiled.run(args.requests)
                profiler.disable()
                stats = pstats.Stats(profiler, stream=sys.stdout).sort_stats("tottime")
                stats.print_stats(30)
                return
            cpu = await measure([*chosen, ModelTarget(bare)], args.requests, args.rounds)
        finally:
            await shutdown()
    print(f"{args.requests} requests a round, {args.rounds} rounds, 1-row iris, in process")
    print(report(cpu))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--only", nargs="*", help="targets to measure (floor is always kept)")
    parser.add_argument("--profile", help="cProfile one target instead of measuring")
    arguments = parser.parse_args()
    if arguments.only and "floor" not in arguments.only:
        arguments.only.append("floor")
    asyncio.run(main(arguments))
