"""Every setting of the service, read from environment variables by one object created in the app factory."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Environment variables (case-insensitive names equal to the field names)."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    rskd_home: Path = Field(Path(".rskd"), description="state of the embedded stack: databases, artifacts, logs")
    rskd_database_url: str | None = Field(None, description="SQLAlchemy URL; default SQLite under RSKD_HOME")
    ray_address: str = Field("http://127.0.0.1:8265", description="Ray dashboard / Jobs API of the cluster")
    ray_auth_mode: Literal["disabled", "token"] | None = Field(
        None,
        description="Ray's token auth towards the cluster: 'token' when the cluster has it on (Ray turns it on when "
        "~/.ray/auth_token exists; the token is read from there or RAY_AUTH_TOKEN); unset = Ray's own default",
    )
    ray_auth_token: SecretStr | None = Field(
        None, description="Ray's auth token when it is not in ~/.ray/auth_token (compose passes it to every node)"
    )
    mlflow_tracking_uri: str = Field("http://127.0.0.1:5000", description="MLflow server the trials log to")
    rskd_api_token: SecretStr | None = Field(None, description="if set, every /v1 route needs Bearer <token>")
    rskd_data_root: str | None = Field(None, description="RSKD_DATA_ROOT handed to the jobs")
    rskd_storage_path: str | None = Field(None, description="Tune experiment state for the jobs")
    rskd_max_trials: int = Field(500, ge=1, description="trials per sweep")
    rskd_max_epochs: int = Field(1000, ge=1, description="epochs per trial")
    rskd_mlflow_patience_s: float = Field(
        300.0, gt=0, description="how long a trial waits for an unreachable MLflow before it fails (sent to the jobs)"
    )
    rskd_system_metrics: bool = Field(
        True, description="MLflow's system-metrics monitor on every trial's run (sent to the jobs)"
    )
    rskd_max_body_bytes: int = Field(1_000_000, ge=1024, description="largest accepted request body")
    rskd_sync_interval_s: float = Field(2.0, gt=0, description="how often job states are synced from Ray")
    rskd_mlflow_ui_url: str | None = Field(
        None, description="the MLflow UI as a browser reaches it (dashboard links); default MLFLOW_TRACKING_URI if http"
    )
    rskd_dashboard_url: str | None = Field(
        None, description="this service as a browser reaches it: sent to the jobs, the sweeps' MLflow runs link it"
    )
    rskd_ray_ui_url: str | None = Field(
        None, description="the Ray dashboard as a browser reaches it (dashboard links); default RAY_ADDRESS if http"
    )
    rskd_trials_ttl_s: float = Field(
        1.0, ge=0, description="how long an active sweep's trials read from MLflow are reused (0 = every request reads)"
    )
    rskd_job_stop_timeout_s: int = Field(
        60, ge=1, description="grace between SIGTERM and SIGKILL when a job is stopped (the driver marks runs KILLED)"
    )

    def ui_links(self) -> dict[str, str | None]:
        """Where a browser finds the MLflow UI and the Ray dashboard (None: not browsable, e.g. a sqlite store)."""

        def http(url: str | None) -> str | None:
            return url.rstrip("/") if url and url.startswith(("http://", "https://")) else None

        return {
            "mlflow": http(self.rskd_mlflow_ui_url or self.mlflow_tracking_uri),
            "ray": http(self.rskd_ray_ui_url or self.ray_address),
        }

    @property
    def database_url(self) -> str:
        return self.rskd_database_url or f"sqlite:///{(self.rskd_home / 'service.db').resolve()}"

    @property
    def storage_path(self) -> str:
        return self.rskd_storage_path or str((self.rskd_home / "storage").resolve())
