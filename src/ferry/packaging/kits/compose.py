"""A compose project for the whole platform around one version.

Services: ``ferry`` (``ferry server``: registry + control plane + every model) on PostgreSQL and
an S3-compatible store (MinIO, its bucket made by a one-shot ``minio-init``), ``model`` (the
version's own image, ``ferry serve /model``), Prometheus scraping both /metrics with Ferry's
alert rules, and Grafana with Ferry's dashboard and its data source provisioned from files. The
dashboard and the rules are the ones ``ferry monitoring export`` writes, passed in through
``KitOptions.monitoring``. Published ports bind 127.0.0.1 only; passwords have defaults for a
laptop and are read from the environment (or ``.env``).
"""

from __future__ import annotations

from typing import Any

from ferry.errors import ConfigError
from ferry.packaging.kits.target import DeployTarget, KitOptions, MonitoringFiles, to_yaml

POSTGRES_IMAGE = "postgres:16.4"
MINIO_IMAGE = "minio/minio:RELEASE.2024-10-13T13-34-11Z"
MC_IMAGE = "minio/mc:RELEASE.2024-10-08T09-37-26Z"
PROMETHEUS_IMAGE = "prom/prometheus:v2.54.1"
GRAFANA_IMAGE = "grafana/grafana:11.2.2"
BUCKET = "ferry"
# the provisioned data source: the default one, which the dashboard's $datasource picks
DATASOURCE_UID = "ferry-prometheus"
RULES_DIR = "/etc/prometheus/rules"
NON_ROOT = "10001:10001"
# ports published on the host's loopback
HOST_PORTS = {
    "ferry": 8000,
    "model": 8080,
    "minio-console": 9001,
    "prometheus": 9090,
    "grafana": 3000,
}

# compose interpolations: the values come from the environment, these are laptop defaults
_DB_PASSWORD = "${FERRY_DB_PASSWORD:-ferry}"  # noqa: S105
_S3_KEY = "${FERRY_S3_ACCESS_KEY:-ferry}"
_S3_SECRET = "${FERRY_S3_SECRET_KEY:-ferry-secret}"  # noqa: S105 - MinIO wants 8+ characters


def render(target: DeployTarget, options: KitOptions) -> dict[str, str]:
    options.check()
    monitoring = _monitoring(options)
    return {
        "compose.yaml": _header(target, options) + to_yaml(project(target, options)),
        "prometheus/prometheus.yml": to_yaml(prometheus_config(options)),
        "prometheus/rules/ferry-alerts.yml": monitoring.alert_rules,
        "grafana/provisioning/datasources/prometheus.yaml": to_yaml(grafana_datasource()),
        "grafana/provisioning/dashboards/ferry.yaml": to_yaml(grafana_dashboards()),
        "grafana/dashboards/ferry.json": monitoring.dashboard,
        "README.txt": _readme(target, options),
    }


def _monitoring(options: KitOptions) -> MonitoringFiles:
    if options.monitoring is None:
        raise ConfigError(
            "the compose kit provisions Prometheus and Grafana: pass Ferry's dashboard and "
            "alert rules as KitOptions.monitoring (`ferry deploy compose` does)",
            field="monitoring",
        )
    return options.monitoring


def _header(target: DeployTarget, options: KitOptions) -> str:
    return (
        f"# Ferry platform with {target.model} version {target.version} ({target.ref})\n"
        f"# content sha256 {target.sha256}, image {options.image_for(target)}\n"
        "# docker compose up -d   (or podman compose up -d)\n"
    )


def _readyz_check(port: int) -> dict[str, Any]:
    # the image has Python but maybe no curl: ask /readyz with the standard library
    probe = (
        "import urllib.request; "
        f"urllib.request.urlopen('http://127.0.0.1:{port}/readyz', timeout=3)"
    )
    return {
        "test": ["CMD", "python", "-c", probe],
        "interval": "10s",
        "timeout": "5s",
        "retries": 3,
        "start_period": "60s",
    }


def _hardened() -> dict[str, Any]:
    """What the Ferry containers run with: a non-root user, a read-only root, no privileges."""
    return {
        "user": NON_ROOT,
        "read_only": True,
        "tmpfs": ["/tmp"],  # noqa: S108 - private to the container
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges:true"],
    }


def project(target: DeployTarget, options: KitOptions) -> dict[str, Any]:
    image = options.image_for(target)
    port = options.port
    server_image = options.extra.get("server_image", image)
    s3_env = {
        "AWS_ACCESS_KEY_ID": _S3_KEY,
        "AWS_SECRET_ACCESS_KEY": _S3_SECRET,
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    services: dict[str, Any] = {
        "postgres": {
            "image": POSTGRES_IMAGE,
            "environment": {
                "POSTGRES_USER": "ferry",
                "POSTGRES_PASSWORD": _DB_PASSWORD,
                "POSTGRES_DB": "ferry",
            },
            "volumes": ["postgres-data:/var/lib/postgresql/data"],
            "healthcheck": {
                "test": ["CMD-SHELL", "pg_isready -U ferry -d ferry"],
                "interval": "5s",
                "timeout": "3s",
                "retries": 20,
            },
            "restart": "unless-stopped",
        },
        "minio": {
            "image": MINIO_IMAGE,
            "command": ["server", "/data", "--console-address", ":9001"],
            "environment": {"MINIO_ROOT_USER": _S3_KEY, "MINIO_ROOT_PASSWORD": _S3_SECRET},
            "volumes": ["minio-data:/data"],
            "ports": [f"127.0.0.1:{HOST_PORTS['minio-console']}:9001"],
            "healthcheck": {
                "test": ["CMD", "mc", "ready", "local"],
                "interval": "5s",
                "timeout": "3s",
                "retries": 20,
            },
            "restart": "unless-stopped",
        },
        "minio-init": {
            "image": MC_IMAGE,
            "depends_on": {"minio": {"condition": "service_healthy"}},
            "environment": {"S3_KEY": _S3_KEY, "S3_SECRET": _S3_SECRET},
            "entrypoint": ["/bin/sh", "-c"],
            # $$ keeps compose from interpolating: the shell in the container expands these
            "command": [
                'mc alias set store http://minio:9000 "$$S3_KEY" "$$S3_SECRET" && '
                f"mc mb --ignore-existing store/{BUCKET}"
            ],
            "restart": "no",
        },
        "ferry": {
            "image": server_image,
            "command": ["ferry", "server", "--host", "0.0.0.0", "--port", str(port)],  # noqa: S104
            "environment": {
                "FERRY_DATABASE_URL": f"postgresql://ferry:{_DB_PASSWORD}@postgres:5432/ferry",
                "FERRY_ARTIFACTS": f"s3://{BUCKET}/artifacts",
                "FERRY_S3_ENDPOINT_URL": "http://minio:9000",
                "FERRY_HOME": "/tmp/ferry",  # noqa: S108 - caches only; the registry is remote
                "FERRY_LOG_FORMAT": "json",
                "HOME": "/tmp",  # noqa: S108 - the user has no home in the image
                **s3_env,
            },
            "depends_on": {
                "postgres": {"condition": "service_healthy"},
                "minio-init": {"condition": "service_completed_successfully"},
            },
            "ports": [f"127.0.0.1:{HOST_PORTS['ferry']}:{port}"],
            "healthcheck": _readyz_check(port),
            "restart": "unless-stopped",
            **_hardened(),
        },
        "model": {
            "image": image,
            "command": [
                "ferry",
                "serve",
                "/model",
                "--host",
                "0.0.0.0",  # noqa: S104 - inside the container
                "--no-auth",  # its port is published on the host's loopback only
                "--port",
                str(port),
                "--workers",
                str(options.workers),
            ],
            "environment": {
                "FERRY_LOG_FORMAT": "json",
                "HOME": "/tmp",  # noqa: S108 - the user has no home in the image
                "FERRY_HOME": "/tmp/ferry",  # noqa: S108
            },
            "labels": {
                "dev.ferry.model": target.model,
                "dev.ferry.version": str(target.version),
                "dev.ferry.sha256": target.sha256,
            },
            "ports": [f"127.0.0.1:{HOST_PORTS['model']}:{port}"],
            "healthcheck": _readyz_check(port),
            "restart": "unless-stopped",
            **_hardened(),
        },
        "prometheus": {
            "image": PROMETHEUS_IMAGE,
            "command": [
                "--config.file=/etc/prometheus/prometheus.yml",
                "--storage.tsdb.path=/prometheus",
                "--storage.tsdb.retention.time=15d",
            ],
            "volumes": [
                "./prometheus/prometheus.yml:/etc/prometheus/prometheus.yml:ro",
                f"./prometheus/rules:{RULES_DIR}:ro",
                "prometheus-data:/prometheus",
            ],
            "depends_on": ["ferry", "model"],
            "ports": [f"127.0.0.1:{HOST_PORTS['prometheus']}:9090"],
            "restart": "unless-stopped",
        },
        "grafana": {
            "image": GRAFANA_IMAGE,
            "environment": {
                "GF_SECURITY_ADMIN_USER": "admin",
                "GF_SECURITY_ADMIN_PASSWORD": "${GRAFANA_ADMIN_PASSWORD:-admin}",
                "GF_USERS_ALLOW_SIGN_UP": "false",
                "GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH": "/etc/grafana/dashboards/ferry.json",
            },
            "volumes": [
                "./grafana/provisioning:/etc/grafana/provisioning:ro",
                "./grafana/dashboards:/etc/grafana/dashboards:ro",
                "grafana-data:/var/lib/grafana",
            ],
            "depends_on": ["prometheus"],
            "ports": [f"127.0.0.1:{HOST_PORTS['grafana']}:3000"],
            "restart": "unless-stopped",
        },
    }
    return {
        "name": f"ferry-{target.slug}",
        "services": services,
        "volumes": {
            "postgres-data": {},
            "minio-data": {},
            "prometheus-data": {},
            "grafana-data": {},
        },
    }


def prometheus_config(options: KitOptions) -> dict[str, Any]:
    return {
        "global": {"scrape_interval": "15s", "evaluation_interval": "15s"},
        "rule_files": [f"{RULES_DIR}/*.yml"],
        "scrape_configs": [
            {
                "job_name": job,
                "metrics_path": "/metrics",
                "static_configs": [{"targets": [f"{job}:{options.port}"]}],
            }
            for job in ("ferry", "model")
        ],
    }


def grafana_datasource() -> dict[str, Any]:
    return {
        "apiVersion": 1,
        "datasources": [
            {
                "name": "Prometheus",
                "uid": DATASOURCE_UID,
                "type": "prometheus",
                "access": "proxy",
                "url": "http://prometheus:9090",
                "isDefault": True,
                "editable": False,
            }
        ],
    }


def grafana_dashboards() -> dict[str, Any]:
    return {
        "apiVersion": 1,
        "providers": [
            {
                "name": "ferry",
                "folder": "Ferry",
                "type": "file",
                "disableDeletion": True,
                "allowUiUpdates": False,
                "options": {"path": "/etc/grafana/dashboards"},
            }
        ],
    }


def _readme(target: DeployTarget, options: KitOptions) -> str:
    ports = HOST_PORTS
    return (
        f"Ferry platform with {target.model} version {target.version} ({target.ref})\n"
        f"image {options.image_for(target)}, content sha256 {target.sha256}\n\n"
        "Start:   docker compose up -d      (podman compose up -d works too)\n"
        "Stop:    docker compose down       (add -v to delete the data volumes)\n\n"
        f"ferry server (registry + all models)  http://127.0.0.1:{ports['ferry']}\n"
        f"  register a version: ferry register BUNDLE --name {target.model} "
        f"--url http://127.0.0.1:{ports['ferry']}\n"
        f"{target.model} version {target.version} alone         "
        f"http://127.0.0.1:{ports['model']}/v1/models/{target.model}/predict\n"
        f"Prometheus                            http://127.0.0.1:{ports['prometheus']}\n"
        f"Grafana (dashboard 'Ferry')           http://127.0.0.1:{ports['grafana']}\n"
        f"MinIO console                         http://127.0.0.1:{ports['minio-console']}\n\n"
        "Passwords come from the environment or a .env file beside compose.yaml:\n"
        "  FERRY_DB_PASSWORD, FERRY_S3_ACCESS_KEY, FERRY_S3_SECRET_KEY, GRAFANA_ADMIN_PASSWORD\n"
        "The ferry service runs `ferry server` from the model image unless --server-image names\n"
        "another; that image's ferry-ml needs its postgres and s3 extras.\n"
    )
