"""Typed settings, read once from ``DVCBOT_*`` environment variables (see ``.env.example``)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from dvcbot import PROJECT_ROOT


class Settings(BaseSettings):
    """Everything configurable about one dvcbot deployment."""

    model_config = SettingsConfigDict(env_prefix="DVCBOT_", env_file=None, extra="ignore")

    database_url: str = f"sqlite:///{PROJECT_ROOT / 'var' / 'dvcbot.db'}"
    gateway_host: str = "127.0.0.1"
    gateway_port: int = 8000
    rasa_host: str = "127.0.0.1"
    rasa_port: int = 5005
    rasa_token: SecretStr | None = None
    rasa_timeout: float = Field(default=15.0, description="seconds to wait for Rasa's reply")
    actions_host: str = "127.0.0.1"
    actions_port: int = 5055
    redis_url: str | None = None
    catalog_dir: Path = PROJECT_ROOT / "data" / "catalog"
    post_offices_file: Path = PROJECT_ROOT / "data" / "post_offices.yml"
    content_dir: Path = PROJECT_ROOT / "data" / "content"
    # What `dvcbot train`, `content check`, `eval`, `deploy` and `rollback` work on: the folder with config.yml,
    # domain/ and data/ (its var/ keeps train.log and deployments.json), and where models go. Tests use copies.
    project_dir: Path = PROJECT_ROOT
    models_dir: Path | None = Field(default=None, description="trained models (default: <project_dir>/models)")
    webchat_max_chars: int = 2000
    transcript_retention_days: int = Field(default=180, ge=1, description="transcript lines older than this go")
    inbound_retention_hours: int = Field(default=48, ge=1, description="handled platform updates older than this go")
    official_portal_url: str = "https://dichvucong.gov.vn/"
    log_level: str = "INFO"
    log_format: Literal["text", "json"] = Field(default="text", description="text: readable lines (make run); "
                                                "json: one JSON object per line (production, docker)")
    metrics_token: SecretStr | None = Field(default=None, description="set: /metrics wants 'Authorization: "
                                            "Bearer <token>'; unset: /metrics is open")
    # Telegram: the bot's token from @BotFather, the webhook's secret token, the Bot API server
    telegram_token: SecretStr | None = None
    telegram_secret: SecretStr | None = None
    telegram_api_base: str = "https://api.telegram.org"
    telegram_polling: bool = Field(default=False, description="long-poll instead of the webhook (local use)")
    gateway_replicas: int = Field(default=1, ge=1, le=30,
                                  description="gateway replicas sending for the same bot: each gets an equal share "
                                              "of Telegram's 30 messages/s")
    # Zalo Official Account (Open API v3)
    zalo_app_id: str | None = None
    zalo_app_secret: SecretStr | None = None
    zalo_oa_secret_key: SecretStr | None = None
    zalo_access_token: SecretStr | None = None
    zalo_refresh_token: SecretStr | None = None
    zalo_api_base: str = "https://openapi.zalo.me"
    zalo_oauth_base: str = "https://oauth.zaloapp.com"

    rasa_tracker_url: str | None = None
    rasa_urls: str = Field(default="", description="every Rasa server `dvcbot deploy` loads a model into, one at a "
                                                   "time, comma-separated (default: the one at rasa_url)")

    # Human handoff (README "Handoff to postal staff")
    handoff_hours: str = Field(default="mon-fri 07:30-17:00; sat 07:30-11:30",
                               description="staff working hours: 'mon-fri 07:30-11:30, 13:30-17:00; sat 08:00-11:00'")
    handoff_holidays: str = Field(default="", description="days without staff, ISO dates separated by commas")
    handoff_timezone: str = "Asia/Ho_Chi_Minh"
    handoff_unclaimed_minutes: float = Field(default=5.0, description="unclaimed this long: the citizen is told")
    handoff_remind_minutes: float = Field(default=3.0, description="staff are reminded of unclaimed tickets this often")
    handoff_silence_minutes: float = Field(default=30.0, description="a claimed ticket whose citizen stays silent "
                                                                    "this long closes itself")
    handoff_default_wait_minutes: float = Field(default=5.0, description="expected wait while there is no history")
    handoff_transcript_lines: int = Field(default=10, description="recent messages shown to staff with a ticket")
    handoff_check_seconds: float = Field(default=30.0, description="how often the timers above are checked")
    # Staff: the Telegram supergroup (with topics) where tickets are handled
    staff_telegram_group_id: int | None = None
    # The web console at /console/
    console_session_hours: float = Field(default=12.0, description="a console login lasts this long")
    console_secure_cookies: str = Field(default="auto", description="auto (Secure over https) | true | false")
    console_login_max_failures: int = Field(default=5, description="failed logins per account (and 4x per address) "
                                                                   "before a lock-out")
    console_login_window_minutes: float = Field(default=15.0, description="the window failed logins count in")
    # Editors' inbox of misunderstood messages (actions/editor/inbox.py) and the console's "Thử câu" page
    inbox_low_confidence: float = Field(default=0.6, ge=0.0, le=1.0,
                                        description="a message whose intent is predicted below this goes to the "
                                                    "editors' inbox")
    editor_data_dir: Path = Field(default=PROJECT_ROOT / "data",
                                  description="the data/ folder the console writes labelled examples into "
                                              "(nlu/) and checks against (heldout/, lexicon/, rules/)")

    @property
    def tracker_store_url(self) -> str:
        """Where Rasa keeps conversation trackers (so they survive restarts and model swaps).

        By default a SQLite file beside the project's SQLite database, or the project's PostgreSQL database.
        """
        if self.rasa_tracker_url:
            return self.rasa_tracker_url
        if self.database_url.startswith("sqlite:///"):
            project_db = Path(self.database_url.removeprefix("sqlite:///"))
            return "sqlite:///" + project_db.with_name("rasa-trackers.db").as_posix()
        return self.database_url.replace("postgresql+psycopg://", "postgresql://", 1)

    @property
    def models_path(self) -> Path:
        return self.models_dir or self.project_dir / "models"

    @property
    def rasa_url(self) -> str:
        return f"http://{self.rasa_host}:{self.rasa_port}"

    @property
    def rasa_replica_urls(self) -> list[str]:
        """The Rasa servers a model deploy goes to: ``DVCBOT_RASA_URLS``, else :attr:`rasa_url`."""
        return [u.strip().rstrip("/") for u in self.rasa_urls.split(",") if u.strip()] or [self.rasa_url]

    @property
    def actions_url(self) -> str:
        return f"http://{self.actions_host}:{self.actions_port}"

    @property
    def telegram_enabled(self) -> bool:
        """Telegram is served when its token is set."""
        return self.telegram_token is not None

    @property
    def zalo_enabled(self) -> bool:
        """Zalo is served when the app, its OA secret key and a refresh token are set."""
        return bool(self.zalo_app_id and self.zalo_app_secret and self.zalo_oa_secret_key
                    and self.zalo_refresh_token)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (tests build their own ``Settings`` instead)."""
    return Settings()
