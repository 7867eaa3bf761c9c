"""The smoke test a build ends with, run inside the new image: load /model (checksums
verified), replay the version's stored input example and compare with its expected output.

``python -m ferry.packaging.smoke /model`` prints one line and exits 0 when they match.
"""

from __future__ import annotations

import sys
from pathlib import Path

from ferry.errors import BundleError


def replay_example(bundle: Path) -> str:
    """A one-line summary when the answers match; BundleError otherwise."""
    from ferry.model.example import replay_example as replay
    from ferry.model.loaded import load_bundle

    model = load_bundle(bundle, verify=True)
    if model.example is None or model.expected is None:
        return f"{model.name} {model.version}: loaded; no stored example to replay"
    result = replay(model)
    if result.mismatches:
        raise BundleError(f"answers differ from the stored expected output: {result.summary()}")
    return f"smoke test passed: {model.name} answers its stored example as expected"


def main(argv: list[str]) -> int:
    bundle = Path(argv[1] if len(argv) > 1 else "/model")
    try:
        sys.stdout.write(replay_example(bundle) + "\n")
    except BundleError as exc:
        sys.stdout.write(f"smoke test failed: {exc.message}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
