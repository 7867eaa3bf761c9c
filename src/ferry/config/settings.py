"""Settings from FERRY_* environment variables (pydantic-settings)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Process-wide configuration; every field can be set as ``FERRY_<NAME>``."""

    model_config = SettingsConfigDict(env_prefix="FERRY_", extra="ignore")

    home: Path = Field(default_factory=lambda: Path.home() / ".ferry")
    max_body_bytes: int = Field(default=32 * 1024 * 1024, ge=1024)
    max_request_rows: int = Field(default=100_000, ge=1)
    # adaptive batching: concurrent requests for one model merged into one predict call
    batching: bool = True
    max_batch_size: int = Field(default=512, ge=1)
    max_wait_ms: float = Field(default=0.0, ge=0.0, le=1000.0)
    # ferry server: versions kept loaded per worker (least recently used out), and how often
    # aliases are re-read (a moved alias switches traffic within about this long plus a load)
    max_loaded_models: int = Field(default=8, ge=1)
    route_refresh_seconds: float = Field(default=0.25, gt=0.0, le=60.0)
    # ferry server: a name or alias routes to the ONNX copy `ferry optimize` registered of the
    # version it points at (checked equal on the example), when there is one
    prefer_optimized: bool = False
    # uploads to the registry API: the whole multipart body, and how long the separate process
    # that loads and checks an uploaded model may take
    max_upload_bytes: int = Field(default=2 * 1024**3, ge=1024)
    inspect_timeout_seconds: float = Field(default=300.0, gt=0.0)
    # what unpacking an uploaded archive may write and take (registry/unpack.py says why these
    # defaults): all files, one file, entries, wall time, and written bytes per archive byte
    # past 64 MiB; beyond any of them the upload answers 413 and leaves nothing
    unpack_max_bytes: int = Field(default=4 * 1024**3, ge=1024)
    unpack_max_file_bytes: int = Field(default=4 * 1024**3, ge=1024)
    unpack_max_entries: int = Field(default=10_000, ge=1)
    unpack_max_seconds: float = Field(default=120.0, gt=0.0)
    unpack_max_ratio: float = Field(default=100.0, ge=1.0)
    # connections (per worker): complete headers within header_timeout of the first byte (or of
    # the connection), and the body at min_body_rate bytes/s over every body_timeout window;
    # else 408 and closed. max_connections 0: sized from the descriptor limit
    header_timeout_seconds: float = Field(default=10.0, gt=0.0)
    body_timeout_seconds: float = Field(default=10.0, gt=0.0)
    min_body_rate: float = Field(default=500.0, ge=0.0)
    max_connections: int = Field(default=0, ge=0)
    # the sandbox of uploaded code (the inspector, code models' processes; ferry.security.sandbox):
    # "bwrap" (bubblewrap: no secrets, no network, no inherited files) or "off" (rlimits and a
    # scrubbed environment only: for machines without user namespaces, chosen on purpose)
    sandbox: Literal["bwrap", "off"] = "bwrap"
    sandbox_network: bool = False  # let sandboxed code open network connections
    sandbox_memory_mb: int = Field(default=2048, ge=64)  # address space per sandboxed process
    sandbox_cpu_seconds: int = Field(default=86_400, ge=1)  # CPU time of a code model process
    sandbox_max_file_mb: int = Field(default=4096, ge=1)  # largest file sandboxed code writes
    model_timeout_seconds: float = Field(default=60.0, gt=0.0)  # one call to a code model
    log_level: str = "INFO"
    log_format: str = "console"
    access_log_sample: float = Field(default=0.0, ge=0.0, le=1.0)
    # registry: metadata database and artifact store (defaults live under ``home``, see paths.py)
    database_url: str | None = None  # sqlite:///... or postgresql://user@host/db
    artifacts: str | None = None  # a folder, file:///folder or s3://bucket/prefix
    s3_endpoint_url: str | None = None  # MinIO-style S3-compatible servers
    # deadlines (registry/artifacts/s3.py says why these defaults): each S3 request's connect
    # and read timeouts and attempts, and one blob's whole transfer; past them a 503
    s3_connect_timeout_seconds: float = Field(default=5.0, gt=0.0)
    s3_read_timeout_seconds: float = Field(default=30.0, gt=0.0)
    s3_max_attempts: int = Field(default=3, ge=1)
    s3_transfer_deadline_seconds: float = Field(default=900.0, gt=0.0)
    # database deadlines (registry/metadata/engine.py): PostgreSQL connect and statement
    # timeouts (0: none), and the wait for a pooled connection (both backends)
    db_connect_timeout_seconds: float = Field(default=10.0, gt=0.0)
    db_statement_timeout_seconds: float = Field(default=300.0, ge=0.0)
    db_pool_timeout_seconds: float = Field(default=30.0, gt=0.0)
    # security (ferry.security): "required" turns auth on at any address, "off" keeps it off
    # even on a public address (like --insecure); "auto" is on when bound beyond loopback
    auth: Literal["auto", "required", "off"] = "auto"
    auth_secret: str | None = None  # HMAC key for API key hashes; default: a file in home
    # how long a worker trusts a key it checked: the revocation delay, so at most 1 s; a
    # cached key costs one primary-key SELECT per worker per this long
    auth_cache_seconds: float = Field(default=0.5, ge=0.0, le=1.0)
    # request headers above this many bytes (names and values) answer 431 before any other
    # work: uvicorn's httptools parser has no limit of its own (8 MB headers were accepted)
    max_header_bytes: int = Field(default=16 * 1024, ge=1024, le=64 * 1024 * 1024)
    public_metrics: bool = False  # /metrics without a key (else it needs the read scope)
    jwt_secret: str | None = None  # HS256 shared secret
    jwt_jwks: str | None = None  # RS256/ES256 keys: a JWKS file path or an http(s) URL
    jwt_issuer: str | None = None
    jwt_audience: str | None = None
    jwt_scopes_claim: str = "scope"  # a space-separated string or a list of Ferry scopes
    # the longest a token may live (exp - iat, or exp - now without iat); None: unbounded
    jwt_max_lifetime: float | None = Field(default=None, gt=0.0)
    # quotas of every JWT subject (None: unlimited); a token's ferry_rpm / ferry_rows_per_day
    # claims may lower them for that token, never raise them
    jwt_requests_per_minute: int | None = Field(default=None, ge=1)
    jwt_rows_per_day: int | None = Field(default=None, ge=1)
    redis_url: str | None = None  # quota counters shared in Redis (else in the database)
    usage_flush_seconds: float = Field(default=2.0, gt=0.0, le=600.0)
    # monitoring: the prediction log ("off", "all" or a sample fraction; empty: the command's
    # default, all for ``ferry server`` and off for ``ferry serve``), its queue bound per worker,
    # and live performance from feedback: rolling window, alert thresholds
    # ({"accuracy": 0.9, "f1": 0.8, "mae": 2.0, "rmse": 3.0}) and labeled rows before alerting
    prediction_log: str = ""
    prediction_log_queue: int = Field(default=10_000, ge=1)
    prediction_log_retention_days: float = Field(default=0.0, ge=0.0)  # 0: keep everything
    # while the database refuses the log's writes (down, disk full): requests held per worker,
    # in spool files (default <home>/spool/predictions), in memory if that folder fails too;
    # past either bound they are dropped and counted (ferry_predlog_dropped_total)
    prediction_log_buffer: int = Field(default=100_000, ge=0)
    prediction_log_buffer_bytes: int = Field(default=256 * 1024 * 1024, ge=0)
    prediction_log_spool_dir: Path | None = None
    performance_window: str = "1h"
    performance_thresholds: dict[str, float] = Field(default_factory=dict)
    performance_min_samples: int = Field(default=20, ge=1)
    # monitoring: drift thresholds as JSON ({"psi": 0.3}; names in monitoring/drift.py, a
    # model's tags drift.<name>=<value> override them), the drift job in ferry server (every
    # interval, over the last window of the prediction log; 0 turns it off), where alerts go,
    # and the name this site's telemetry bundles carry
    drift_thresholds: dict[str, float] = Field(default_factory=dict)
    drift_interval_seconds: float = Field(default=0.0, ge=0.0)
    drift_window_seconds: float = Field(default=3600.0, gt=0.0)
    alert_webhook_url: str | None = None
    # a performance alert (model, version, metric) is posted once per cooldown, by whichever
    # worker or replica claims it first in the registry database (0: no cooldown)
    alert_cooldown_seconds: float = Field(default=3600.0, ge=0.0)
    telemetry_site: str | None = None  # default: the host name


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The one cached global; tests call ``get_settings.cache_clear()``."""
    return Settings()
