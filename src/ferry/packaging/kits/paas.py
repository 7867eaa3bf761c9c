"""What Heroku-style platforms read: ``fly.toml`` and ``render.yaml`` run the version's image,
``railway.json`` builds the image from a build context, and ``Procfile`` + ``requirements.txt``
+ ``.python-version`` run the bundle with a buildpack.

These platforms pick the port and pass it as ``$PORT``: ``ferry serve`` reads it when no
``--port`` is given, so the image's own command needs no change; the health check is /readyz.
"""

from __future__ import annotations

import json
import sys

from ferry import __version__
from ferry.packaging.kits.target import DeployTarget, KitOptions, to_json, to_yaml

HEALTH_PATH = "/readyz"


def render(target: DeployTarget, options: KitOptions) -> dict[str, str]:
    options.check()
    return {
        "fly.toml": _fly(target, options),
        "render.yaml": _render_blueprint(target, options),
        "railway.json": _railway(),
        "Procfile": _procfile(options),
        "requirements.txt": _requirements(target),
        ".python-version": _python_version(),
        "README.txt": _readme(target, options),
    }


def _toml(value: object) -> str:
    # JSON strings, numbers and booleans are valid TOML values
    return json.dumps(value)


def _fly(target: DeployTarget, options: KitOptions) -> str:
    port = options.port
    lines = [
        f"# {target.model} version {target.version} ({target.ref}), sha256 {target.sha256}",
        f"app = {_toml(f'ferry-{target.slug}')}",
        "",
        "[build]",
        f"  image = {_toml(options.image_for(target))}",
        "",
        "[env]",
        f"  PORT = {_toml(str(port))}",
        '  FERRY_LOG_FORMAT = "json"',
        "",
        "[http_service]",
        f"  internal_port = {port}",
        "  force_https = true",
        '  auto_stop_machines = "stop"',
        "  auto_start_machines = true",
        f"  min_machines_running = {options.replicas}",
        "",
        "  [[http_service.checks]]",
        '    grace_period = "60s"',
        '    interval = "15s"',
        '    method = "GET"',
        f"    path = {_toml(HEALTH_PATH)}",
        '    timeout = "5s"',
        "",
        "[[vm]]",
        f"  memory = {_toml(_fly_memory(options.memory_limit))}",
        '  cpu_kind = "shared"',
        "  cpus = 1",
    ]
    return "\n".join(lines) + "\n"


def _fly_memory(limit: str) -> str:
    """Kubernetes quantities (``1Gi``, ``512Mi``) in Fly's units (``1gb``, ``512mb``)."""
    for suffix, unit in (("Gi", "gb"), ("Mi", "mb"), ("G", "gb"), ("M", "mb")):
        if limit.endswith(suffix) and limit[: -len(suffix)].isdigit():
            return f"{limit[: -len(suffix)]}{unit}"
    return "1gb"


def _render_blueprint(target: DeployTarget, options: KitOptions) -> str:
    blueprint = {
        "services": [
            {
                "type": "web",
                "name": f"ferry-{target.slug}",
                "runtime": "image",
                "image": {"url": options.image_for(target)},
                "healthCheckPath": HEALTH_PATH,
                "numInstances": options.replicas,
                "envVars": [
                    {"key": "PORT", "value": str(options.port)},
                    {"key": "FERRY_LOG_FORMAT", "value": "json"},
                ],
            }
        ]
    }
    header = f"# {target.model} version {target.version} ({target.ref}), sha256 {target.sha256}\n"
    return header + to_yaml(blueprint)


def _railway() -> str:
    return to_json(
        {
            "$schema": "https://railway.com/railway.schema.json",
            "build": {"builder": "DOCKERFILE", "dockerfilePath": "Dockerfile"},
            "deploy": {
                "healthcheckPath": HEALTH_PATH,
                "healthcheckTimeout": 300,
                "restartPolicyType": "ON_FAILURE",
                "restartPolicyMaxRetries": 10,
            },
        }
    )


def _procfile(options: KitOptions) -> str:
    # a Procfile line runs in a shell, which expands $PORT (8000 when the platform sets none)
    return (
        f"web: ferry serve {options.bundle_dir} --host 0.0.0.0 --no-auth "
        f"--port ${{PORT:-{options.port}}} "
        f"--workers {options.workers}\n"
    )


def _requirements(target: DeployTarget) -> str:
    lines = [f"ferry-ml=={__version__}", *target.requirements]
    return "\n".join(lines) + "\n"


def _python_version() -> str:
    return f"{sys.version_info.major}.{sys.version_info.minor}\n"


def _readme(target: DeployTarget, options: KitOptions) -> str:
    return (
        f"{target.model} version {target.version} ({target.ref}) on Heroku-style platforms\n"
        f"image {options.image_for(target)}, content sha256 {target.sha256}\n\n"
        "With the image (push it to a registry the platform can pull from first):\n"
        "  Fly.io:   fly deploy                  (reads fly.toml)\n"
        "  Render:   a Blueprint from render.yaml\n"
        "  Railway:  put railway.json in the folder of `ferry build REF --context-only DIR`;\n"
        "            Railway builds that Dockerfile\n\n"
        "With a buildpack (Heroku, Railway, Render's native Python): put Procfile,\n"
        "requirements.txt and .python-version beside the bundle folder:\n"
        f"  ferry pull {target.model}/{target.version} --out {options.bundle_dir}\n\n"
        f"The server listens on $PORT ({options.port} when unset); health check {HEALTH_PATH}.\n"
    )
