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
