"""Settings, read once from ``DHR_*`` environment variables and injected everywhere else.

Nothing outside this module reads ``os.environ``.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Everything the server can be told from outside."""

    model_config = SettingsConfigDict(env_prefix="DHR_", extra="ignore")

    data_dir: Path = Field(default=Path("./dhr-data"), description="where the SQLite default lives")
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; default: SQLite file under data_dir"
    )
    base_url: str = Field(
        default="http://127.0.0.1:8080/fhir", description="the FHIR base URL clients see"
    )
    host: str = "127.0.0.1"
    port: int = 8080
    max_body_bytes: int = Field(default=16 * 1024 * 1024, ge=1024)
    default_page_size: int = Field(default=50, ge=1)
    max_page_size: int = Field(default=1000, ge=1)
    max_bundle_entries: int = Field(default=10_000, ge=1)
    log_sql: bool = False
    # Authorisation (SMART App Launch 2.2, https://hl7.org/fhir/smart-app-launch/).
    auth_enabled: bool = Field(
        default=True, description="false serves the API open (only for benchmark baselines)"
    )
    access_token_seconds: int = Field(default=3600, ge=60, le=3600)
    backend_token_seconds: int = Field(default=300, ge=60, le=300)
    refresh_token_seconds: int = Field(default=30 * 24 * 3600, ge=60)
    code_seconds: int = Field(default=60, ge=10, le=600)
    login_session_seconds: int = Field(default=8 * 3600, ge=60)

    @property
    def effective_database_url(self) -> str:
        """The configured URL, or the embedded SQLite file under ``data_dir``."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.data_dir.resolve() / 'dhr.sqlite'}"

    @property
    def fhir_base(self) -> str:
        """The base URL without a trailing slash."""
        return self.base_url.rstrip("/")

    @property
    def issuer(self) -> str:
        """The authorisation server's issuer: the server root (the FHIR base without ``/fhir``)."""
        base = self.fhir_base
        return base[: -len("/fhir")] if base.endswith("/fhir") else base

    @property
    def auth_base(self) -> str:
        """Where the authorisation endpoints live: ``{issuer}/auth``."""
        return f"{self.issuer}/auth"
