"""The model process: ``python -m ferry.server.serving.modelhost BUNDLE``, run in the sandbox.

It loads a code model (a custom class, an MLflow python_function) from its bundle and answers
the frames of ``modelwire`` on stdin/stdout: first a hello (what the model is: classes,
``predict_proba``) or the load's failure, then one reply per predict request. What the model
prints goes to stderr. It exits when its stdin closes.
"""

from __future__ import annotations

import contextlib
import os
import sys
import traceback
from pathlib import Path

import numpy as np

from ferry.errors import FerryError
from ferry.server.serving.modelwire import (
    Frame,
    arrays_frame,
    read_batch,
    read_frame,
    write_frame,
)

MAX_MESSAGE = 500


def _failure(exc: BaseException) -> Frame:
    if isinstance(exc, MemoryError):
        import resource

        limit, _ = resource.getrlimit(resource.RLIMIT_AS)
        message = f"MemoryError: the model process has {limit // 2**20} MB of address space"
    else:
        message = f"{type(exc).__name__}: {exc}"
    code = exc.code if isinstance(exc, FerryError) else ""
    return Frame({"ok": False, "code": code, "message": message[:MAX_MESSAGE]}, [])


def serve(bundle: Path, inbox: int, outbox: int) -> int:
    from ferry.model.flavors import get_flavor
    from ferry.model.manifest import read_manifest

    try:
        manifest = read_manifest(bundle)
        predictor = get_flavor(manifest.flavor).load(
            bundle / manifest.artifact, manifest.flavor_options
        )
        classes = predictor.classes
        with contextlib.suppress(ImportError):  # custom models get DataFrames: import it now,
            import pandas  # noqa: F401  (under the load's deadline, not the first request's)
        hello: dict[str, object] = {
            "ok": True,
            "has_proba": bool(predictor.has_proba),
            "classes": None if classes is None else np.asarray(classes).tolist(),
        }
        write_frame(outbox, Frame(hello, []))
    except BaseException as exc:  # process boundary: report the load's failure, then exit
        traceback.print_exc()
        write_frame(outbox, _failure(exc))
        return 1
    while True:
        try:
            request = read_frame(inbox)
        except EOFError:
            return 0
        try:
            batch = read_batch(request)
            if request.header["op"] == "predict_proba":
                result = predictor.predict_proba(batch)
            else:
                result = predictor.predict(batch)
            reply = arrays_frame([np.asarray(result)], ok=True)
        except Exception as exc:  # the model raised: the worker reports it for this request
            traceback.print_exc()
            reply = _failure(exc)
        write_frame(outbox, reply)


def main() -> int:
    if len(sys.argv) != 2:
        print("usage: python -m ferry.server.serving.modelhost BUNDLE", file=sys.stderr)  # noqa: T201
        return 2
    from ferry.security.sandbox import close_inherited

    close_inherited()  # whatever descriptor a launcher leaked, before the model's code runs
    outbox = os.dup(1)
    os.dup2(2, 1)  # the model's prints land on stderr, not in the replies
    return serve(Path(sys.argv[1]), 0, outbox)


if __name__ == "__main__":
    sys.exit(main())
