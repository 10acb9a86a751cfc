"""Settings, read once from ``DHR_*`` environment variables and injected everywhere else.

Nothing outside this module reads ``os.environ``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

_LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
DEFAULT_IDP_SCOPES = {
    # CIS2 Authentication: national RBAC roles come with ``nationalrbacaccess``.
    "staff": "openid profile nationalrbacaccess",
    # NHS login: ``profile`` carries nhs_number, family_name, birthdate, identity_proofing_level.
    "patient": "openid profile",
}


class IdentityProviderConfig(BaseModel):
    """An external OpenID Connect provider DHR trusts to sign users in (see dhr.auth.federation).

    ``kind`` says how its users map to DHR users: ``staff`` (CIS2-like: national RBAC roles and
    an SDS user id) or ``patient`` (NHS login-like: a verified NHS number).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,31}$", description="slug used in URLs")
    display_name: str = Field(min_length=1, max_length=80)
    issuer: str = Field(description="the provider's issuer URL (https, or http on loopback)")
    client_id: str = Field(min_length=1, max_length=255)
    client_secret: SecretStr
    token_endpoint_auth_method: Literal["client_secret_basic", "client_secret_post"] = (
        "client_secret_basic"  # noqa: S105 - a method name, not a secret
    )
    kind: Literal["staff", "patient"]
    scopes: str | None = Field(default=None, description="default: by kind, DEFAULT_IDP_SCOPES")
    default_role: str | None = Field(
        default=None, description="staff role when the provider names no role DHR knows"
    )
    identity_proofing_levels: tuple[str, ...] = Field(
        default=("P9",),
        description="patient providers: accepted identity_proofing_level values (empty: any)",
    )

    @field_validator("issuer")
    @classmethod
    def _issuer_url(cls, value: str) -> str:
        parts = urlsplit(value)
        loopback = parts.scheme == "http" and parts.hostname in _LOOPBACK_HOSTS
        if not (parts.scheme == "https" or loopback) or not parts.hostname:
            raise ValueError("issuer must be an https URL (http only on a loopback address)")
        if parts.query or parts.fragment:
            raise ValueError("issuer has no query or fragment")
        return value.rstrip("/")

    @field_validator("default_role")
    @classmethod
    def _staff_role(cls, value: str | None) -> str | None:
        if value is None:
            return None
        from dhr.auth import roles  # package data, read on demand (keeps config import-light)

        r = roles.role(value)  # UnknownRoleError is a ValueError: pydantic reports it
        if r.kind != "staff" or not r.interactive or not r.user_assignable:
            raise ValueError(f"default_role {value!r} is not a staff role that can sign in")
        return r.code

    @property
    def request_scopes(self) -> str:
        """The scopes asked of the provider (always including ``openid``)."""
        scopes = (self.scopes or DEFAULT_IDP_SCOPES[self.kind]).split()
        return " ".join(scopes if "openid" in scopes else ["openid", *scopes])


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
    validation_workers: int = Field(
        default_factory=lambda: max(0, min(4, (os.cpu_count() or 1) - 1)),
        ge=0,
        le=64,
        description="processes that validate large writes beside the request (0: none; "
        "default: one fewer than the CPUs, at most 4)",
    )
    validation_pool_min: int = Field(
        default=64, ge=1, description="resources a write needs for its validation to go there"
    )
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
    identity_providers: list[IdentityProviderConfig] = Field(
        default_factory=list,
        description="external OpenID Connect providers (JSON list in DHR_IDENTITY_PROVIDERS)",
    )
    # Audit (IHE BALP AuditEvents, hash-chained, Ed25519-signed checkpoints).
    audit_enabled: bool = Field(
        default=True, description="false records no audit (only for benchmark baselines)"
    )
    consent_enabled: bool = Field(
        default=True,
        description="false skips the consent and controller policy (only for benchmark baselines)",
    )
    consent_implicit: Literal["care-relationship", "direct-care"] = Field(
        default="care-relationship",
        description="the implicit policy for a patient without Consents: direct care by "
        "organisations with a care relationship (default), or direct care by any organisation "
        "(implied consent for direct care, the Summary Care Record model)",
    )
    audit_key_file: Path | None = Field(
        default=None,
        description="Ed25519 checkpoint signing key (PEM), outside the database; "
        "default: data_dir/audit-signing.pem (created on first use)",
    )
    audit_checkpoint_events: int = Field(default=1000, ge=1, description="sign every N events")
    audit_checkpoint_seconds: float = Field(default=10.0, gt=0, description="or every T seconds")
    audit_chain_interval_seconds: float = Field(
        default=0.2, gt=0, description="how often pending events are chained"
    )

    # The unified record (ARCHITECTURE.md): the national controller, joint controller of all data.
    national_controller_ods: str = Field(
        default="X24",
        pattern=r"^[A-Z0-9]{3,10}$",
        description="ODS code of the national data controller (X24: NHS England)",
    )
    national_controller_name: str = Field(default="NHS England", min_length=1, max_length=200)

    @field_validator("identity_providers")
    @classmethod
    def _unique_provider_names(
        cls, value: list[IdentityProviderConfig]
    ) -> list[IdentityProviderConfig]:
        names = [p.name for p in value]
        if len(set(names)) != len(names):
            raise ValueError("identity provider names must be unique")
        return value

    @property
    def effective_database_url(self) -> str:
        """The configured URL, or the embedded SQLite file under ``data_dir``."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.data_dir.resolve() / 'dhr.sqlite'}"

    @property
    def effective_audit_key_file(self) -> Path:
        """The audit signing key file: configured, or ``audit-signing.pem`` under data_dir."""
        return self.audit_key_file or self.data_dir.resolve() / "audit-signing.pem"

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
