"""The inspector process: builds or checks an uploaded bundle, loading the model out of the API.

``python -m ferry.server.control.inspector SPEC.json`` reads an ``InspectSpec`` and either
saves a raw model file as a bundle (``build``: flavor detected, signature inferred from the
example, the example's expected output recorded) or loads a bundle (``check``). Either way it
then loads the bundle and replays its input example. It prints one ``InspectReport`` as JSON
on stdout, and nothing else there: what the model prints goes to stderr.
"""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, JsonValue

from ferry.errors import BundleError, FerryError, FlavorError
from ferry.model.scanner.scan import ScanReport, enforce, scan_model

MAX_WARNINGS = 20


class InspectSpec(BaseModel):
    mode: Literal["build", "check"]
    bundle: str  # build: the folder to create; check: the bundle folder to load
    source: str | None = None  # build: the model file/folder, or "file.py:ClassName"
    example: str | None = None  # build: a .csv or .json input example
    requirements: list[str] | None = None  # build: None pins the libraries the flavor uses
    name: str = "model"
    description: str = ""
    flavor: str | None = None  # build: None detects it
    verify: bool = True  # check every file's sha256 before loading (the API may have already)
    trust: bool = False  # an admin vouches for the file: pickles the scanner refuses still load


class InspectError(BaseModel):
    code: str
    message: str
    details: dict[str, JsonValue] = Field(default_factory=dict)


class InspectReport(BaseModel):
    ok: bool
    flavor: str = ""
    example_check: str = ""  # "passed", "no_example", "no_expected_output"
    warnings: list[str] = Field(default_factory=list)
    error: InspectError | None = None
    scan: dict[str, JsonValue] | None = None  # the pickle scan's summary, for the audit log


def inspect(spec: InspectSpec) -> InspectReport:
    """Scan the model's pickles, build (``build``) and load the bundle, then replay its
    example; raises FerryError (``UnsafeModel`` before anything is unpickled)."""
    bundle = Path(spec.bundle)
    if spec.mode == "build":
        from ferry.model import save

        if spec.source is None:
            raise FlavorError("nothing to build: the spec names no model source")
        source: str | Path = spec.source if ".py:" in spec.source else Path(spec.source)
        scan = None if isinstance(source, str) else scan_pickles(source, spec.flavor, spec.trust)
        save(
            source,
            bundle,
            example=None if spec.example is None else Path(spec.example),
            name=spec.name,
            flavor=spec.flavor,
            requirements=spec.requirements,
            description=spec.description,
        )
    else:
        scan = scan_pickles(bundle, None, spec.trust)
    report = check_bundle(bundle, verify=spec.verify or spec.mode == "build")
    if scan is not None and scan.files:
        report.scan = {key: _jsonable(value) for key, value in scan.summary().items()}
    return report


def scan_pickles(path: Path, flavor: str | None, trust: bool) -> ScanReport:
    """Every pickle loading ``path`` would unpickle, scanned; ``UnsafeModel`` unless clean
    or trusted."""
    report = scan_model(path, flavor, trust=trust)
    enforce(report)
    return report


def check_bundle(bundle: Path, *, verify: bool = True) -> InspectReport:
    """Load the bundle (checksums verified) and compare its example's answers with the stored
    expected output."""
    from ferry.model.example import replay_example
    from ferry.model.loaded import load_bundle

    model = load_bundle(bundle, verify=verify)
    flavor = model.manifest.flavor
    try:
        replay = replay_example(model)
    except FerryError:
        raise
    except Exception as exc:
        raise BundleError(
            f"the model fails on its own input example: {type(exc).__name__}: {exc}"
        ) from exc
    if replay.status != "mismatch":
        return InspectReport(ok=True, flavor=flavor, example_check=replay.status)
    mismatches = replay.mismatches
    if mismatches:
        first = mismatches[0]
        raise BundleError(
            f"the model's answers to its input example differ from the bundle's expected output "
            f"in {len(mismatches)} places; first: {first.output} row {first.row}: expected "
            f"{first.expected!r}, got {first.got!r}",
            mismatches=len(mismatches),
            output=first.output,
            row=first.row,
        )
    return InspectReport(ok=True, flavor=flavor, example_check="passed")


def failure(exc: FerryError) -> InspectReport:
    details = {key: _jsonable(value) for key, value in exc.details.items()}
    return InspectReport(
        ok=False, error=InspectError(code=exc.code, message=exc.message, details=details)
    )


def out_of_memory() -> FlavorError:
    import resource

    limit, _ = resource.getrlimit(resource.RLIMIT_AS)
    shown = "no" if limit == resource.RLIM_INFINITY else f"{limit // 2**20} MB of"
    return FlavorError(
        f"loading the model ran out of memory: the inspector has {shown} address space "
        "(FERRY_SANDBOX_MEMORY_MB)",
        memory_limit_mb=None if limit == resource.RLIM_INFINITY else limit // 2**20,
    )


def _jsonable(value: object) -> JsonValue:
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return str(value)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if argv is None:  # the process entry: drop whatever descriptor a launcher leaked
        from ferry.security.sandbox import close_inherited

        close_inherited()
    report_fd = os.dup(1)
    os.dup2(2, 1)  # whatever the model's code prints lands on stderr, not in the report
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            if len(args) != 1:
                raise FerryError("usage: python -m ferry.server.control.inspector SPEC.json")
            spec = InspectSpec.model_validate_json(Path(args[0]).read_bytes())
            report = inspect(spec)
        except FerryError as exc:
            report = failure(exc)
        except MemoryError:  # the sandbox's address-space limit, not the host's memory
            report = failure(out_of_memory())
        except Exception as exc:  # process boundary: the uploaded model broke while loading
            print(f"inspector: {type(exc).__name__}: {exc}", file=sys.stderr)  # noqa: T201
            report = failure(
                FlavorError(
                    f"the model could not be loaded: {type(exc).__name__}: {exc}",
                    exception=type(exc).__name__,
                )
            )
    report.warnings = [str(w.message) for w in caught[:MAX_WARNINGS]]
    sys.stdout.flush()
    with os.fdopen(report_fd, "wb") as out:
        out.write(report.model_dump_json().encode("utf-8"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
