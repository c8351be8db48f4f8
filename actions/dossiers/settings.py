"""Settings of the dossier look-up, read once from ``DVCBOT_DOSSIER_*`` environment variables."""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class DossierSettings(BaseSettings):
    """Everything configurable about the dossier look-up (defaults suit one post office)."""

    model_config = SettingsConfigDict(env_prefix="DVCBOT_DOSSIER_", env_file=None, extra="ignore")

    api_url: str | None = Field(default=None, description="base URL of the external status API; unset: register only")
    api_token: SecretStr | None = Field(default=None, description="bearer token of the external status API")
    api_timeout: float = Field(default=5.0, description="seconds per external API request")
    api_retries: int = Field(default=2, description="retries after a failed external API request")
    api_backoff: float = Field(default=0.5, description="first retry delay in seconds; doubles each retry")
    breaker_failures: int = Field(default=5, description="consecutive failed calls that open the circuit")
    breaker_reset: float = Field(default=60.0, description="seconds the open circuit refuses calls")
    max_failures_per_sender: int = Field(default=5, description="failed verifications per sender per window")
    max_failures_per_dossier: int = Field(default=5, description="failed verifications per dossier code per window")
    lockout_window_minutes: int = Field(default=60, description="the window the failures are counted in")
    verified_minutes: int = Field(default=30, description="how long a verified look-up allows a subscription")
    min_answer_seconds: float = Field(
        default=0.6, description="every verification answer takes at least this long (one timing class)")
    audit_retention_days: int = Field(default=365, description="look-up audit rows older than this are purged")
    notification_retention_days: int = Field(default=90, description="handled notifications older than this go")


@lru_cache(maxsize=1)
def get_dossier_settings() -> DossierSettings:
    """The process-wide dossier settings (tests build their own or clear this cache)."""
    return DossierSettings()
