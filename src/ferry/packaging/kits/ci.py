"""A pipeline for a model's repository: train, replay the example against a real server
(``ferry check``), register the new version, publish its wheel and build its image.

``github`` writes ``.github/workflows/ferry-<model>.yml``, ``circleci`` writes
``.circleci/config.yml``. Pull requests train and check only; pushes to the main branch also
register, publish and build. Secrets are read from the CI's secret store, never written here:
FERRY_URL and FERRY_API_KEY (the registry), PACKAGE_INDEX_URL with TWINE_USERNAME and
TWINE_PASSWORD (the wheel's index), IMAGE_REPOSITORY (where ``ferry build`` pushes).
"""

from __future__ import annotations

import shlex
import sys
from typing import Any

from ferry import __version__
from ferry.errors import ConfigError
from ferry.packaging.kits.target import DeployTarget, KitOptions, to_yaml

PROVIDERS = ("github", "circleci")
CHECK_PORT = 8000
SECRETS = (
    "FERRY_URL",
    "FERRY_API_KEY",
    "PACKAGE_INDEX_URL",
    "TWINE_USERNAME",
    "TWINE_PASSWORD",
    "IMAGE_REPOSITORY",
)


def render(target: DeployTarget, options: KitOptions) -> dict[str, str]:
    options.check()
    if options.provider == "github":
        path = f".github/workflows/ferry-{target.slug}.yml"
        return {path: _header(target) + to_yaml(github_workflow(target, options))}
    if options.provider == "circleci":
        return {".circleci/config.yml": _header(target) + to_yaml(circleci_config(target, options))}
    raise ConfigError(
        f"no CI provider {options.provider!r}; known providers: {list(PROVIDERS)}",
        field="provider",
    )


def unregistered(model: str) -> DeployTarget:
    """A model the registry does not know yet: its pipeline installs requirements.txt."""
    from ferry.model.signature import Signature
    from ferry.registry.names import check_name

    return DeployTarget(check_name(model), 0, "", "", Signature(inputs=[]), (), 0, model)


def _header(target: DeployTarget) -> str:
    if not target.version:
        return f"# Train, check and ship {target.model} (not registered yet)\n"
    return (
        f"# Train, check and ship {target.model} (written from version {target.version}, "
        f"{target.ref})\n"
    )


def _python() -> str:
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def steps(target: DeployTarget, options: KitOptions) -> list[tuple[str, str, bool]]:
    """``(name, shell script, main branch only)`` in order; both providers run these."""
    bundle = shlex.quote(options.bundle_dir)
    model = shlex.quote(target.model)
    install = " ".join(
        shlex.quote(r) for r in (f"ferry-ml[s3]=={__version__}", *target.requirements)
    )
    if not target.version:  # the registry does not know the model: the repository says
        install += " -r requirements.txt"
    base = f"http://127.0.0.1:{CHECK_PORT}"
    check = "\n".join(
        [
            f"ferry serve {bundle} --port {CHECK_PORT} > ferry-serve.log 2>&1 &",
            "for _ in $(seq 120); do",
            f"  python -c \"import urllib.request; urllib.request.urlopen('{base}/readyz')\" "
            "2>/dev/null && break",
            "  sleep 1",
            "done",
            f"ferry check {base} --bundle {bundle} || (cat ferry-serve.log; exit 1)",
        ]
    )
    return [
        ("Install Ferry and the model's requirements", f"python -m pip install {install}", False),
        ("Train", options.train_command, False),
        ("Replay the example against a real server", check, False),
        (
            "Register the version",
            f'ferry register {bundle} --name {model} --alias candidate --code-ref "$COMMIT"',
            True,
        ),
        (
            "Publish the wheel",
            f'ferry package wheel {model}@candidate --out dist --upload "$PACKAGE_INDEX_URL"',
            True,
        ),
        (
            "Build and push the image",
            f'ferry build {model}@candidate --push "$IMAGE_REPOSITORY:$COMMIT"',
            True,
        ),
    ]


def github_workflow(target: DeployTarget, options: KitOptions) -> dict[str, Any]:
    secrets = {name: f"${{{{ secrets.{name} }}}}" for name in SECRETS}
    job_steps: list[dict[str, Any]] = [
        {"uses": "actions/checkout@v4"},
        {"uses": "actions/setup-python@v5", "with": {"python-version": _python(), "cache": "pip"}},
    ]
    for name, script, main_only in steps(target, options):
        step: dict[str, Any] = {"name": name}
        if main_only:
            step["if"] = "github.event_name == 'push' && github.ref == 'refs/heads/main'"
        step["run"] = script
        job_steps.append(step)
    return {
        "name": f"ferry-{target.slug}",
        "on": {
            "push": {"branches": ["main"]},
            "pull_request": {},
            "workflow_dispatch": {},
        },
        "permissions": {"contents": "read"},
        "concurrency": {"group": f"ferry-{target.slug}-${{{{ github.ref }}}}"},
        "env": {"MODEL": target.model, "COMMIT": "${{ github.sha }}", **secrets},
        "jobs": {
            "model": {
                "runs-on": "ubuntu-latest",
                "timeout-minutes": 60,
                "steps": job_steps,
            }
        },
    }


def circleci_config(target: DeployTarget, options: KitOptions) -> dict[str, Any]:
    job_steps: list[Any] = ["checkout"]
    shipping: list[Any] = ["setup_remote_docker"]  # ferry build's docker builder needs a daemon
    for name, script, main_only in steps(target, options):
        run = {"run": {"name": name, "command": script}}
        (shipping if main_only else job_steps).append(run)
    job_steps.append(
        {"when": {"condition": {"equal": ["main", "<< pipeline.git.branch >>"]}, "steps": shipping}}
    )
    return {
        "version": 2.1,
        "jobs": {
            "model": {
                "docker": [{"image": f"cimg/python:{_python()}"}],
                "resource_class": "medium",
                # secrets come from the project's environment variables or a context
                "environment": {"MODEL": target.model, "COMMIT": "<< pipeline.git.revision >>"},
                "steps": job_steps,
            }
        },
        "workflows": {"model": {"jobs": ["model"]}},
    }
