"""Model commands: ``ferry inspect`` a bundle or model file, ``ferry save`` one as a bundle."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from ferry.model.manifest import Manifest

_EXAMPLE_ROWS = 5
LOCAL_TRUST_HELP = (
    "Load the model even if the scanner refuses it: a pickle importing names outside the "
    "allowlist, or a code model (file.py:Class, an MLflow python_function folder)."
)
TrustOption = Annotated[bool, typer.Option("--trust", help=LOCAL_TRUST_HELP)]


def inspect(
    path: Annotated[
        str, typer.Argument(help="Bundle folder, model file, MLflow folder or file.py:Class.")
    ],
    trust: TrustOption = False,
) -> None:
    """Show a model's flavor, versions, requirements, signature and input example.

    A bundle is described from its manifest; anything else is loaded, after its pickles are
    scanned (code models and refused pickles need --trust)."""
    from ferry.model.bundle import verify_files
    from ferry.model.manifest import MANIFEST_FILE, read_manifest

    root = Path(path)
    if (root / MANIFEST_FILE).is_file():
        # a bundle is described by its manifest: nothing is unpickled to inspect it
        manifest = read_manifest(root)
        verify_files(root, manifest.files)
        show_manifest(manifest, root)
    else:
        from ferry.model import load

        show_manifest(load(root, trust=trust).manifest, None)


def show_manifest(manifest: Manifest, root: Path | None) -> None:
    from ferry.cli.output import show_facts, show_grid

    facts = [
        ("name", manifest.name),
        ("version", manifest.version or "1"),
        ("flavor", manifest.flavor),
        ("artifact", manifest.artifact),
        ("created", manifest.created_at.isoformat(timespec="seconds")),
        ("python", manifest.python_version),
        ("libraries", ", ".join(f"{k} {v}" for k, v in manifest.libraries.items()) or "-"),
        ("requirements", ", ".join(manifest.requirements) or "-"),
    ]
    if manifest.description:
        facts.append(("description", manifest.description))
    if root is None:
        facts.append(("bundle", "no: a raw model file (save it with ferry save)"))
    show_facts(f"Model {manifest.name}", facts)
    signature = manifest.signature
    show_grid(
        "Inputs",
        ["name", "dtype", "shape", "required", "nullable", "categories"],
        [
            [c.name, c.dtype, c.shape, c.required, c.nullable, c.categories or ""]
            for c in signature.inputs
        ],
    )
    show_grid(
        "Outputs",
        ["name", "dtype", "shape", "kind", "labels"],
        [[o.name, o.dtype, o.shape, o.kind, o.labels or ""] for o in signature.outputs],
    )
    if root is not None and manifest.example:
        show_example(root, manifest)


def show_example(root: Path, manifest: Manifest) -> None:
    import orjson

    from ferry.cli.output import show_grid
    from ferry.model.example import read_split

    split = read_split(root / manifest.example) if manifest.example else None
    if split is None:
        return
    rows: list[list[Any]] = [list(row) for row in split["data"][:_EXAMPLE_ROWS]]
    columns = [str(c) for c in split["columns"]]
    highlight = len(columns)
    if manifest.expected_output:
        expected = orjson.loads((root / manifest.expected_output).read_bytes())
        predictions = expected.get("predictions")
        if isinstance(predictions, list):
            columns.append("expected prediction")
            for row, value in zip(rows, predictions, strict=False):
                row.append(value)
    total = len(split["data"])
    show_grid(
        f"Example (first {len(rows)} of {total} rows)", columns, rows, highlight_from=highlight
    )


def save(
    model: Annotated[
        str, typer.Argument(help="Model file, MLflow folder, or a Python class file.py:Class.")
    ],
    dest: Annotated[Path, typer.Argument(help="Bundle folder to create.")],
    example: Annotated[
        Path,
        typer.Option(
            exists=True, dir_okay=False, help="Input example rows (.csv, or .json records/split)."
        ),
    ],
    name: Annotated[
        str | None, typer.Option("--name", "-n", help="Model name (default: the file's stem).")
    ] = None,
    flavor: Annotated[
        str | None, typer.Option(help="Flavor, when it cannot be told from the file.")
    ] = None,
    requirements: Annotated[
        Path | None,
        typer.Option(exists=True, dir_okay=False, help="requirements.txt to record in the bundle."),
    ] = None,
    trust_type: Annotated[
        list[str] | None,
        typer.Option(
            "--trust-type",
            help="Type a .skops file may load, e.g. mypkg.MyTransformer (repeatable).",
        ),
    ] = None,
    trust: TrustOption = False,
    description: Annotated[str, typer.Option(help="Free text stored in the manifest.")] = "",
    overwrite: Annotated[bool, typer.Option(help="Replace DEST if it exists.")] = False,
) -> None:
    """Wrap MODEL into a bundle at DEST, with its signature, example and expected output."""
    import ferry.model
    from ferry.cli.output import show_lines
    from ferry.errors import BundleError
    from ferry.model.scanner.scan import LOCAL_HINT, enforce, scan_model

    source: str | Path = model if ".py:" in model else Path(model)
    if isinstance(source, Path) and not source.exists():
        raise BundleError(f"no model file or folder at {model}", path=model)
    # saving loads the model (to answer its example): scanned first, like every local load
    enforce(scan_model(Path(model), flavor, trust=trust), hint=LOCAL_HINT)
    manifest = ferry.model.save(
        source,
        dest,
        example=example,
        name=name,
        flavor=flavor,
        requirements=read_requirements(requirements) if requirements else None,
        options={"trusted": ",".join(trust_type)} if trust_type else None,
        description=description,
        overwrite=overwrite,
    )
    show_lines([f"saved {manifest.name} ({manifest.flavor}) to {dest}"])
    show_manifest(manifest, dest)


def read_requirements(path: Path) -> list[str]:
    """Requirement lines, without blanks and comments."""
    lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    return [line for line in lines if line]


def optimize(
    source: Annotated[
        str,
        typer.Argument(help="A scikit-learn bundle folder, or a registered version: iris@1."),
    ],
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Where to write the ONNX bundle (folders).")
    ] = None,
    tolerance: Annotated[
        float, typer.Option(help="Largest accepted difference in probabilities or values.")
    ] = 1e-4,
    url: Annotated[
        str | None, typer.Option(help="Registry server (for a registered version); $FERRY_URL.")
    ] = None,
) -> None:
    """Convert a scikit-learn model to ONNX, checked against the original on its example and
    on generated rows. A folder gives a folder (--out); a registered version (``iris@1``,
    ``iris@production``) gives a new version of the same model, with the original as parent."""
    import tempfile

    from ferry.cli.output import show_facts
    from ferry.model.optimize import optimize_to_onnx

    local = Path(source).is_dir()
    if local and out is None:
        raise typer.BadParameter("give --out for the ONNX copy of a bundle folder")
    with tempfile.TemporaryDirectory(prefix="ferry-optimize-") as scratch:
        if local:
            original, dest = Path(source), out or Path(scratch) / "onnx"
        else:
            from ferry.client import Client
            from ferry.registry.names import OPTIMIZED_TAG

            client = Client(url)
            version = client.resolve(source)
            original = client.pull(f"{version.model}/{version.version}", Path(scratch) / "sk")
            dest = out or Path(scratch) / "onnx"
        result = optimize_to_onnx(original, dest, tolerance=tolerance)
        facts = [
            ("rows compared", str(result.comparison.rows)),
            ("labels that differ", str(result.comparison.label_mismatches)),
            ("largest difference", f"{result.comparison.max_abs_difference:.3g}"),
        ]
        title = f"{result.manifest.name}: ONNX copy written to {dest}"
        if not local:
            registered = client.register(
                dest,
                version.model,
                parent=version.version,
                tags={OPTIMIZED_TAG: "onnx"},
                description=f"ONNX conversion of version {version.version}",
            )
            client.close()
            title = (
                f"{registered.model}: version {registered.version} is the ONNX copy of "
                f"version {version.version}"
            )
        show_facts(title, facts)


def register(app: typer.Typer) -> None:
    app.command("inspect")(inspect)
    app.command("save")(save)
    app.command("optimize")(optimize)
