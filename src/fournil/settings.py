"""The one place for Fournil's settings.

Every setting comes from an environment variable or a `.env` file (see `.env.example`). The
defaults are the embedded ones: a SQLite warehouse, a local MLflow store and Prefect's ephemeral
API, all kept under one folder, `FOURNIL_HOME` (default `.fournil/` in the project folder).
Pointing `DATABASE_URL` at PostgreSQL switches the warehouse. The `.env` read is the project's,
found from the current folder upwards; relative paths are made absolute against its folder.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url

#: Values that mark a secret nobody has set yet (as `.env.example` ships them).
PLACEHOLDER_SECRETS = frozenset(
    {"", "change-me", "changeme", "change_me", "secret", "password", "placeholder", "xxx"}
)


#: The business's defaults, shared with the data generator.
DEFAULT_TIMEZONE = "Europe/Paris"
DEFAULT_COUNTRY = "FR"


class SettingsError(Exception):
    """A setting is missing or unsafe; the message says which and what to do."""


def _env(*names: str) -> AliasChoices:
    return AliasChoices(*names)


def env_file() -> Path | None:
    """The project's `.env`: in the current folder or the nearest folder above it (a notebook
    runs in notebooks/, a command in any sub-folder: they read the project's)."""
    here = Path.cwd()
    return next((d / ".env" for d in (here, *here.parents) if (d / ".env").is_file()), None)


def project_dir() -> Path:
    """What relative paths in the settings are relative to: the folder of the project's
    `.env`, else the nearest folder holding a `.fournil` (where `make demo` ran), else here."""
    found = env_file()
    if found is not None:
        return found.parent
    here = Path.cwd()
    return next((d for d in (here, *here.parents) if (d / ".fournil").is_dir()), here)


class _Located(BaseSettings):
    """Settings that read the project's `.env` wherever the process runs from."""

    def __init__(self, **values: object) -> None:
        values.setdefault("_env_file", env_file())
        super().__init__(**values)  # type: ignore[arg-type]


class _Group(_Located):
    """A group of settings read from variables with a common prefix (and `.env`)."""

    model_config = SettingsConfigDict(env_file_encoding="utf-8", extra="ignore")


class GateSettings(_Group):
    """The promotion gate's limits: `FOURNIL_GATE_*`."""

    model_config = SettingsConfigDict(env_prefix="FOURNIL_GATE_")

    max_model_mb: float = Field(50.0, description="Size limit.")
    max_latency_ms: float = Field(
        200.0,
        description="Limit on the median single-row prediction latency of a loaded model.",
    )
    max_latency_ratio: float = Field(
        10.0,
        gt=0.0,
        description="Over max_latency_ms, a model still passes within this many times the "
        "latency of a reference (seasonal naive from the same inputs) timed in the same loop: "
        "a busy machine slows both, a slow model only itself.",
    )
    tolerance: float = Field(
        0.0,
        ge=0.0,
        description="A challenger may be this much worse (relative WAPE) than the champion.",
    )


class TrainSettings(_Group):
    """How many training rows a fit sees: `FOURNIL_TRAIN_*` (not the `_CRON`). The training
    rows are series x origins x horizons; these sample the origins."""

    model_config = SettingsConfigDict(env_prefix="FOURNIL_TRAIN_")

    origin_stride: int = Field(
        2,
        ge=1,
        le=28,
        description="One training origin every N days (each with every horizon); raise it to "
        "train on fewer rows. Logged to MLflow as model.origin_stride.",
    )
    history_days: int = Field(
        730,
        ge=28,
        description="Days of history before a cut-off that training origins come from.",
    )
    max_rows: int = Field(
        4_000_000,
        ge=10_000,
        description="At most about this many training rows per segment: above it, a fixed "
        "share of the (series, origin) pairs is kept (a hash of store, product and date). "
        "Logged to MLflow as model.pair_fraction. ~120 bytes a row while the matrix is built.",
    )


class ApiSettings(_Group):
    """The API service: `FOURNIL_API_*`."""

    model_config = SettingsConfigDict(env_prefix="FOURNIL_API_")

    host: str = Field("127.0.0.1")
    port: int = Field(8000)
    workers: int = Field(1, ge=1)
    challenger_share: float = Field(
        0.1,
        ge=0.0,
        le=1.0,
        description="Share of /v1/predict traffic sent to the challenger (sticky per key+store).",
    )
    model_poll_seconds: float = Field(
        30.0,
        gt=0,
        description="How often the API checks the registry aliases (hot swap).",
    )
    predict_budget_ms: float = Field(
        500.0,
        gt=0,
        description="Time budget of a model prediction; past it the fallback answers.",
    )
    rate_per_minute: int = Field(600, ge=1, description="Per key.")
    max_body_bytes: int = Field(1_000_000)
    max_rows: int = Field(1000, ge=1, description="Rows per predict.")
    tables_poll_seconds: float = Field(
        15.0,
        gt=0,
        description="How often the API checks the warehouse for new sales or forecasts and "
        "rebuilds its in-memory serving tables.",
    )
    history_days: int = Field(
        28,
        ge=0,
        le=366,
        description="Predictions for dates up to this many days before the last sales day are "
        "answered from memory; earlier dates read the warehouse.",
    )
    serving_days: int = Field(
        42,
        ge=1,
        le=3660,
        description="Batch forecasts whose target date is within this many days of the "
        "furthest one are served from memory; older ones are read from the warehouse.",
    )
    key_cache_seconds: float = Field(
        10.0,
        gt=0,
        description="How often the API reloads its table of active keys: a new key works, and "
        "a revoked one stops working, within this (a new key also within a second of its "
        "first use).",
    )
    key_stale_seconds: float = Field(
        3600.0,
        gt=0,
        description="How long the last key table keeps answering while the warehouse is down; "
        "past it, requests get 503.",
    )
    auth_failures_per_minute: int = Field(
        30,
        ge=1,
        description="Failed authentications allowed per client address and minute (a burst of "
        "as many); past it the address gets 429 whatever key it presents.",
    )
    header_timeout_seconds: float = Field(
        10.0, gt=0, description="A request's headers must arrive within this (slow clients)."
    )
    body_timeout_seconds: float = Field(
        30.0, gt=0, description="A request's body must arrive within this after its headers."
    )
    forwarded_allow_ips: str = Field(
        "127.0.0.1",
        description="Proxies whose X-Forwarded-For is trusted for the client address (the "
        "failed-auth throttle): comma-separated addresses, or * (compose: only the proxy "
        "reaches the API).",
    )
    warehouse_timeout_seconds: float = Field(
        5.0, gt=0, description="Connect timeout of the API's warehouse connections."
    )
    log_flush_seconds: float = Field(
        2.0,
        gt=0,
        description="The prediction log is written at least this often (and every 500 rows).",
    )
    log_spill_mb: float = Field(
        100.0,
        ge=0,
        description="Prediction log rows the warehouse cannot take are kept in a local file "
        "under FOURNIL_HOME/api up to this size, and written when it is back.",
    )


class EtlSettings(_Group):
    """The ETL's chunking and plausibility limits: `FOURNIL_ETL_*` (not the `_CRON`)."""

    model_config = SettingsConfigDict(env_prefix="FOURNIL_ETL_")

    chunk_rows: int = Field(
        500_000,
        ge=1,
        description="Rows validated and staged at a time; bounds the ETL's memory.",
    )
    max_units: int = Field(
        100_000,
        ge=1,
        description="Largest plausible units_sold for one store, product and day.",
    )
    max_price_ratio: float = Field(
        20.0,
        gt=1,
        description="A sale's price more than this many times above or below its product's "
        "base price (products.csv) is quarantined as implausible.",
    )
    max_price: float | None = Field(
        None,
        gt=0,
        description="An absolute cap on unit prices on top of the ratio (none by default: "
        "prices are judged against each product's own base price).",
    )


class ReportSettings(_Group):
    """The daily forecast workbook and its e-mail: `FOURNIL_REPORT_*` (not the `_CRON`)."""

    model_config = SettingsConfigDict(env_prefix="FOURNIL_REPORT_")

    to: str = Field(
        "",
        description="Who gets the workbook: comma-separated addresses (empty: it is only "
        "written under FOURNIL_HOME/reports).",
    )
    sender: str = Field("fournil@localhost", description="The From address.")
    days: int = Field(7, ge=1, le=28, description="Days of forecasts in the workbook.")
    smtp_host: str = Field("localhost", description="SMTP server.")
    smtp_port: int = Field(25, ge=1, le=65535, description="25, 587 (STARTTLS) or 465 (TLS).")
    smtp_security: Literal["none", "starttls", "tls"] = Field(
        "none", description="none, starttls (port 587) or tls (port 465)."
    )
    smtp_user: str | None = Field(None, description="Login, if the server wants one.")
    smtp_password: SecretStr | None = Field(None, description="Its password.")
    smtp_timeout_seconds: float = Field(30.0, gt=0)


class Settings(_Located):
    """Fournil's settings; read them with :func:`get_settings`."""

    model_config = SettingsConfigDict(env_file_encoding="utf-8", extra="ignore")

    # --- where things live -------------------------------------------------------------
    mode: Literal["local", "production"] = Field(
        "local",
        validation_alias=_env("FOURNIL_MODE"),
        description="local: embedded defaults, placeholder secrets allowed. "
        "production: every secret must be set.",
    )
    home: Path = Field(
        Path(".fournil"),
        validation_alias=_env("FOURNIL_HOME"),
        description="Folder for the embedded warehouse, MLflow store and Prefect data.",
    )
    database_url: str | None = Field(
        None,
        validation_alias=_env("DATABASE_URL", "FOURNIL_DATABASE_URL"),
        description="SQLAlchemy URL of the warehouse; default: SQLite file under FOURNIL_HOME.",
    )
    mlflow_tracking_uri: str | None = Field(
        None,
        validation_alias=_env("MLFLOW_TRACKING_URI"),
        description="MLflow tracking server; default: a local store under FOURNIL_HOME.",
    )
    prefect_api_url: str | None = Field(
        None,
        validation_alias=_env("PREFECT_API_URL"),
        description="Prefect server API; default: Prefect's ephemeral API.",
    )
    prefect_port: int | None = Field(
        None,
        ge=1,
        le=65535,
        validation_alias=_env("FOURNIL_PREFECT_PORT"),
        description="Port of the temporary Prefect server `fournil flows run` starts when "
        "PREFECT_API_URL is unset (default: one Prefect picks in 8000-8999).",
    )

    # --- models ------------------------------------------------------------------------
    model_name: str = Field(
        "fournil-forecaster",
        validation_alias=_env("FOURNIL_MODEL_NAME"),
        description="Registered model name (per-segment models add -<granularity>-<segment>).",
    )
    experiment: str = Field(
        "fournil", validation_alias=_env("FOURNIL_EXPERIMENT"), description="MLflow experiment."
    )
    horizon: int = Field(
        14, ge=1, le=28, validation_alias=_env("FOURNIL_HORIZON"), description="Days ahead."
    )
    granularity: Literal["global", "family", "city", "region"] = Field(
        "global",
        validation_alias=_env("FOURNIL_GRANULARITY"),
        description="One global model, or one model per product family, city or region.",
    )
    train: TrainSettings = Field(default_factory=TrainSettings)
    gate: GateSettings = Field(default_factory=GateSettings)

    # --- orchestration -----------------------------------------------------------------
    landing_dir: Path | None = Field(
        None,
        validation_alias=_env("FOURNIL_LANDING_DIR"),
        description="Folder the daily ETL flow ingests new drops from (default HOME/landing).",
    )
    work_pool: str = Field(
        "fournil", validation_alias=_env("FOURNIL_WORK_POOL"), description="Prefect work pool."
    )
    etl_cron: str = Field("0 6 * * *", validation_alias=_env("FOURNIL_ETL_CRON"))
    forecast_cron: str = Field("30 6 * * *", validation_alias=_env("FOURNIL_FORECAST_CRON"))
    monitor_cron: str = Field("0 7 * * *", validation_alias=_env("FOURNIL_MONITOR_CRON"))
    train_cron: str = Field("0 3 * * 1", validation_alias=_env("FOURNIL_TRAIN_CRON"))
    report_cron: str = Field(
        "45 6 * * *",
        validation_alias=_env("FOURNIL_REPORT_CRON"),
        description="When the forecast workbook is e-mailed (after the forecast's 06:30).",
    )
    report: ReportSettings = Field(default_factory=ReportSettings)
    task_runner: Literal["thread", "dask", "ray"] = Field(
        "thread",
        validation_alias=_env("FOURNIL_TASK_RUNNER"),
        description="Where flows run parallel tasks: threads here, or a Dask / Ray cluster.",
    )
    task_runner_address: str | None = Field(
        None,
        validation_alias=_env("FOURNIL_TASK_RUNNER_ADDRESS"),
        description="Address of an existing Dask scheduler or Ray cluster (None: start local).",
    )
    alertmanager_url: str | None = Field(
        None,
        validation_alias=_env("FOURNIL_ALERTMANAGER_URL"),
        description="Alertmanager, for `fournil status` to list the alerts firing.",
    )
    alert_webhook_url: str | None = Field(
        None,
        validation_alias=_env("FOURNIL_ALERT_WEBHOOK_URL"),
        description="Slack-compatible incoming webhook for failures and quality breaches.",
    )
    drift_psi_threshold: float = Field(
        0.2, validation_alias=_env("FOURNIL_DRIFT_PSI_THRESHOLD"), description="PSI alarm level."
    )
    alert_reject_rate: float = Field(
        0.05,
        validation_alias=_env("FOURNIL_ALERT_REJECT_RATE"),
        description="Alert when an ETL run quarantines more than this share of rows.",
    )

    # --- API ---------------------------------------------------------------------------
    # --- API ---------------------------------------------------------------------------
    api: ApiSettings = Field(default_factory=ApiSettings)

    # --- business ----------------------------------------------------------------------
    timezone: str = Field(
        DEFAULT_TIMEZONE,
        validation_alias=_env("FOURNIL_TIMEZONE"),
        description="The business's time zone: 'today', schedules and future-date checks.",
    )
    country: str = Field(
        DEFAULT_COUNTRY,
        validation_alias=_env("FOURNIL_COUNTRY"),
        description="Country whose public holidays apply (ISO 3166 code).",
    )

    absent_days: Literal["zero", "unknown"] | None = Field(
        None,
        validation_alias=_env("FOURNIL_ABSENT_DAYS"),
        description="What a day without a sales row means, from a series' first recorded day "
        "on: zero (an export that lists only days with sales) or unknown (not reported). "
        "Unset, it is unknown and training warns when there are such days.",
    )

    # --- ETL -----------------------------------------------------------------------------
    etl: EtlSettings = Field(default_factory=EtlSettings)

    # --- secrets -------------------------------------------------------------------------
    secret_key: SecretStr = Field(
        SecretStr("change-me"),
        validation_alias=_env("FOURNIL_SECRET_KEY"),
        description="Server-side secret (API key hashing pepper). Must be set in production.",
    )

    log_level: str = Field("INFO", validation_alias=_env("FOURNIL_LOG_LEVEL"))

    @field_validator("absent_days", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if value == "" else value  # compose passes an unset variable as ""

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r} (use an IANA name)") from exc
        return value

    @field_validator("home", "landing_dir")
    @classmethod
    def _absolute(cls, value: Path | None) -> Path | None:
        """Relative paths are the project's (`project_dir`), made absolute once, here: every
        process the command starts (a notebook kernel, Prefect's server) sees the same."""
        if value is None:
            return None
        value = value.expanduser()
        return value if value.is_absolute() else (project_dir() / value).resolve()

    @field_validator("database_url")
    @classmethod
    def _parsable_url(cls, value: str | None) -> str | None:
        if value:
            try:
                make_url(value)
            except Exception as exc:
                raise ValueError(f"DATABASE_URL is not a database URL: {exc}") from exc
        return value or None

    @model_validator(mode="after")
    def _no_placeholder_secrets_in_production(self) -> Settings:
        if self.mode == "production":
            problems = []
            if self.secret_key.get_secret_value().strip().lower() in PLACEHOLDER_SECRETS:
                problems.append("FOURNIL_SECRET_KEY is a placeholder")
            if self.database_url is None:
                problems.append("DATABASE_URL is not set")
            else:
                password = make_url(self.database_url).password
                if password is not None and str(password).lower() in PLACEHOLDER_SECRETS:
                    problems.append("the password in DATABASE_URL is a placeholder")
            if problems:
                raise SettingsError(
                    "refusing to start in production mode: "
                    + "; ".join(problems)
                    + " (run `make init-env` or set them in .env)"
                )
        return self

    # --- derived -------------------------------------------------------------------------
    @property
    def home_dir(self) -> Path:
        return self.home.expanduser().resolve()

    @property
    def warehouse_url(self) -> str:
        """The warehouse URL, defaulting to a SQLite file under FOURNIL_HOME."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.home_dir / 'warehouse.db'}"

    @property
    def tracking_uri(self) -> str:
        if self.mlflow_tracking_uri:
            return self.mlflow_tracking_uri
        return f"sqlite:///{self.home_dir / 'mlflow.db'}"

    @property
    def landing(self) -> Path:
        return (self.landing_dir or self.home_dir / "landing").expanduser().resolve()

    @property
    def artifacts_dir(self) -> Path:
        return self.home_dir / "mlartifacts"

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def ensure_home(self) -> Path:
        self.home_dir.mkdir(parents=True, exist_ok=True)
        return self.home_dir


@functools.cache
def get_settings() -> Settings:
    """The process's settings, read once from the environment and `.env`."""
    return Settings()


def reset_settings_cache() -> None:
    """Forget cached settings (tests that change the environment call this)."""
    get_settings.cache_clear()
