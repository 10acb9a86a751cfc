"""An external OpenID Connect provider as DHR's sign-in uses it: discovery, keys, code, ID token,
and what its claims mean in DHR (national RBAC roles, NHS number, username).

OpenID Connect Discovery 1.0 section 4 (https://openid.net/specs/openid-connect-discovery-1_0.html:
the document at ``{issuer}/.well-known/openid-configuration`` must name the configured issuer),
Core 1.0 sections 3.1.3 (token request with the PKCE verifier, RFC 7636; client authentication
``client_secret_basic`` or ``client_secret_post``, RFC 6749 section 2.3.1), 3.1.3.7 (ID token
validation) and 5.3 (UserInfo). The discovery document and the JWK Set are kept an hour; a
``kid`` missing from the cached set makes one fresh fetch of it, so the provider can rotate keys.
Only asymmetric signatures the provider advertises are accepted (never ``none``, never HMAC, which
would make the client secret a signing key). Every HTTP call has a 5 second timeout and reads at
most 256 KiB; whatever goes wrong is a :class:`FederationError` (502 when the provider cannot be
used, 400 when what it sent cannot be accepted), never an unhandled exception.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote_plus

import httpx
from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, RSAKey

from dhr.auth import roles as rbac
from dhr.auth import users
from dhr.config import IdentityProviderConfig
from dhr.record.nhs_number import is_valid_nhs_number

HTTP_TIMEOUT_SECONDS = 5.0
METADATA_SECONDS = 3600.0  # discovery document and JWK Set are kept this long
MAX_RESPONSE_BYTES = 256 * 1024
MAX_ID_TOKEN_CHARS = 16 * 1024
LEEWAY_SECONDS = 60  # clock skew allowed between DHR and the provider
SDS_ROLE_SYSTEM = "https://fhir.nhs.uk/Id/sds-role-code"
MAX_USERNAME = 128
SIGNING_ALGS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512")


class FederationError(Exception):
    """Sign-in through a provider failed; shown to the user as a page (never redirected)."""

    def __init__(self, status: int, title: str, message: str, next_url: str = "") -> None:
        super().__init__(message)
        self.status, self.title, self.message, self.next_url = status, title, message, next_url


def sha256_hex(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def _b64_json(segment: str) -> Any:
    try:
        return json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except ValueError:  # binascii.Error, UnicodeDecodeError and JSONDecodeError are ValueErrors
        return None


@dataclass(frozen=True)
class Metadata:
    """What DHR uses of a provider's discovery document."""

    issuer: str  # exactly as the provider writes it (``iss`` must match it exactly)
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    userinfo_endpoint: str | None
    algorithms: tuple[str, ...]  # ID token signing algorithms advertised that DHR accepts


class Provider:
    """A configured provider, its discovery document and JWK Set cached in memory."""

    def __init__(
        self, config: IdentityProviderConfig, http: httpx.Client, clock: Callable[[], float]
    ) -> None:
        self.config = config
        self.http = http
        self.clock = clock
        self._lock = threading.Lock()
        self._metadata: tuple[float, Metadata] | None = None
        self._jwks: tuple[float, list[dict[str, Any]]] | None = None

    def _unreachable(self, what: str) -> FederationError:
        name = self.config.display_name
        return FederationError(
            502, f"{name} is not answering", f"DHR could not use {name}'s {what}; try later."
        )

    def _json(self, response: httpx.Response, what: str) -> dict[str, Any]:
        if len(response.content) > MAX_RESPONSE_BYTES:
            raise self._unreachable(what)
        try:
            body = response.json()
        except ValueError:
            raise self._unreachable(what) from None
        if not isinstance(body, dict):
            raise self._unreachable(what)
        return body

    def _get(self, url: str, what: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
        try:
            response = self.http.get(url, headers={"accept": "application/json", **(headers or {})})
        except httpx.HTTPError:
            raise self._unreachable(what) from None
        if response.status_code != 200:
            raise self._unreachable(what)
        return self._json(response, what)

    def metadata(self) -> Metadata:
        """The discovery document (fetched at most once an hour)."""
        cached = self._metadata
        if cached is not None and self.clock() - cached[0] < METADATA_SECONDS:
            return cached[1]
        with self._lock:
            cached = self._metadata
            if cached is not None and self.clock() - cached[0] < METADATA_SECONDS:
                return cached[1]
            doc = self._get(f"{self.config.issuer}/.well-known/openid-configuration", "discovery")
            urls = [doc.get(k) for k in ("authorization_endpoint", "token_endpoint", "jwks_uri")]
            userinfo = doc.get("userinfo_endpoint")
            if userinfo is not None:
                urls.append(userinfo)
            advertised = doc.get("id_token_signing_alg_values_supported") or ["RS256"]
            # Endpoints are https like the issuer (http only beside a loopback test issuer).
            secure = self.config.issuer.startswith("https://")
            schemes = ("https://",) if secure else ("https://", "http://")
            if (
                str(doc.get("issuer", "")).rstrip("/") != self.config.issuer
                or not all(isinstance(u, str) and u.startswith(schemes) for u in urls)
                or not isinstance(advertised, list)
            ):
                raise self._unreachable("discovery document")
            meta = Metadata(
                issuer=str(doc["issuer"]),
                authorization_endpoint=str(urls[0]),
                token_endpoint=str(urls[1]),
                jwks_uri=str(urls[2]),
                userinfo_endpoint=userinfo if isinstance(userinfo, str) and userinfo else None,
                algorithms=tuple(a for a in SIGNING_ALGS if a in advertised),
            )
            self._metadata = (self.clock(), meta)
            return meta

    def _key_set(self, fresh: bool) -> list[dict[str, Any]]:
        cached = self._jwks
        if not fresh and cached is not None and self.clock() - cached[0] < METADATA_SECONDS:
            return cached[1]
        body = self._get(self.metadata().jwks_uri, "signing keys")
        keys = body.get("keys")
        if not isinstance(keys, list):
            raise self._unreachable("signing keys")
        found = [k for k in keys if isinstance(k, dict) and k.get("use", "sig") == "sig"]
        self._jwks = (self.clock(), found)
        return found

    def key(self, kid: str | None, alg: str) -> RSAKey | ECKey | None:
        """The provider's key ``kid`` for ``alg``; an unknown ``kid`` refetches the set once."""
        for fresh in (False, True):
            kty = "EC" if alg.startswith("ES") else "RSA"
            candidates = [
                k
                for k in self._key_set(fresh)
                if k.get("kty") == kty
                and k.get("alg", alg) == alg
                and (kid is None or k.get("kid") == kid)
            ]
            if len(candidates) == 1:
                try:
                    return (ECKey if kty == "EC" else RSAKey).import_key(candidates[0])
                except (JoseError, ValueError, TypeError):
                    return None
        return None

    def exchange(self, code: str, verifier: str, redirect_uri: str) -> dict[str, Any]:
        """The token response for ``code`` (OpenID Connect Core 1.0 section 3.1.3)."""
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "code_verifier": verifier,
        }
        client_id, secret = self.config.client_id, self.config.client_secret.get_secret_value()
        auth: httpx.BasicAuth | httpx.Auth = httpx.Auth()  # no authentication header
        if self.config.token_endpoint_auth_method == "client_secret_basic":  # noqa: S105
            auth = httpx.BasicAuth(quote_plus(client_id), quote_plus(secret))  # RFC 6749 2.3.1
        else:
            form.update(client_id=client_id, client_secret=secret)
        try:
            response = self.http.post(
                self.metadata().token_endpoint,
                data=form,
                auth=auth,
                headers={"accept": "application/json"},
            )
        except httpx.HTTPError:
            raise self._unreachable("token endpoint") from None
        body = self._json(response, "token endpoint")
        if response.status_code != 200:
            if not isinstance(body.get("error"), str):
                raise self._unreachable("token endpoint")
            raise FederationError(
                400,
                "Sign-in failed",
                f"{self.config.display_name} refused to complete the sign-in: "
                f"{body['error']} {str(body.get('error_description') or '')[:200]}".strip(),
            )
        return body

    def userinfo(self, access_token: str) -> dict[str, Any]:
        """The claims of the UserInfo endpoint (section 5.3), if the provider has one."""
        endpoint = self.metadata().userinfo_endpoint
        if endpoint is None:
            return {}
        return self._get(endpoint, "user information", {"authorization": f"Bearer {access_token}"})

    def verify_id_token(self, token: str, nonce_hash: str) -> dict[str, Any]:
        """The claims of a valid ID token for DHR (section 3.1.3.7); FederationError if not."""
        parts = token.split(".") if len(token) <= MAX_ID_TOKEN_CHARS else []
        header = _b64_json(parts[0]) if len(parts) == 3 else None
        if not isinstance(header, dict):
            raise _bad_token("it is not a signed JWT")
        alg, kid = header.get("alg"), header.get("kid")
        allowed = self.metadata().algorithms
        if alg not in allowed or not isinstance(alg, str):
            raise _bad_token(f"it is signed {alg!r}, not one of {', '.join(allowed) or 'RS256'}")
        if "crit" in header:
            raise _bad_token("it has critical header parameters DHR does not understand")
        key = self.key(kid if isinstance(kid, str) else None, alg)
        if key is None:
            raise _bad_token("it is not signed by a key the provider publishes")
        try:
            payload = jws.deserialize_compact(token, key, algorithms=[alg]).payload
            claims = json.loads(payload)
        except (JoseError, ValueError):
            raise _bad_token("its signature is invalid") from None
        if not isinstance(claims, dict):
            raise _bad_token("its claims are not a JSON object")
        self._check_claims(claims, nonce_hash)
        return claims

    def _check_claims(self, claims: dict[str, Any], nonce_hash: str) -> None:
        now = self.clock()
        client_id = self.config.client_id
        aud, azp = claims.get("aud"), claims.get("azp")
        exp, iat = claims.get("exp"), claims.get("iat")
        sub, nonce = claims.get("sub"), claims.get("nonce")
        if claims.get("iss") != self.metadata().issuer:
            raise _bad_token("it was issued by someone else (iss)")
        if not (aud == client_id or (isinstance(aud, list) and client_id in aud)):
            raise _bad_token("it was issued to another application (aud)")
        if azp is not None and azp != client_id:
            raise _bad_token("it was issued to another application (azp)")
        exp, iat = _number(exp), _number(iat)
        if exp is None or iat is None:
            raise _bad_token("it has no exp or iat")
        if now >= exp + LEEWAY_SECONDS:
            raise _bad_token("it has expired")
        if iat > now + LEEWAY_SECONDS:
            raise _bad_token("it was issued in the future")
        if not isinstance(sub, str) or not sub or len(sub) > 255:
            raise _bad_token("it names no subject (sub)")
        if not isinstance(nonce, str) or not hmac.compare_digest(sha256_hex(nonce), nonce_hash):
            raise _bad_token("it does not answer this sign-in (nonce)")


def _number(value: object) -> float | None:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    return float(value) if ok and isinstance(value, int | float) else None


def _bad_token(reason: str) -> FederationError:
    return FederationError(400, "Sign-in failed", f"The identity token was refused: {reason}.")


# --- what the claims mean in DHR ---------------------------------------------------------------


def username_for(provider: str, sub: str) -> str:
    """``<provider>:<sub>``, or ``<provider>:sha256:<hex>`` when that would be too long."""
    name = f"{provider}:{sub}"
    if len(name) <= MAX_USERNAME and sub.isprintable():
        return name
    return f"{provider}:sha256:{sha256_hex(sub)}"


def staff_role(claims: dict[str, Any], default_role: str | None) -> tuple[str | None, str | None]:
    """The DHR role and ODS code of a CIS2-like user (``nhsid_nrbac_roles``), or the default.

    Only the role the user selected at the provider (``selected_roleid``) counts when there is
    one; otherwise the first role whose code (the last part of ``role_code``, e.g. R8000 of
    ``S0080:G0450:R8000``) is a national RBAC role DHR lets staff sign in with.
    """
    listed = claims.get("nhsid_nrbac_roles")
    entries = [e for e in listed if isinstance(e, dict)] if isinstance(listed, list) else []
    selected = claims.get("selected_roleid")
    if isinstance(selected, str) and selected:
        entries = [e for e in entries if e.get("person_roleid") == selected]
    orgs = [_ods(e.get("org_code")) for e in entries]
    for entry, org in zip(entries, orgs, strict=True):
        code = str(entry.get("role_code") or "").rsplit(":", 1)[-1]
        try:
            r = rbac.role(code)
        except rbac.UnknownRoleError:
            continue
        if r.code == code and r.system == SDS_ROLE_SYSTEM and r.interactive and r.user_assignable:
            return r.code, org
    if default_role is None:
        return None, None
    return default_role, next((o for o in orgs if o is not None), None)


def _ods(value: object) -> str | None:
    code = str(value).strip().upper() if isinstance(value, str) else ""
    return code if users.ODS_CODE.match(code) else None


def display_name(claims: dict[str, Any]) -> str:
    name = claims.get("name")
    if isinstance(name, str) and name.strip():
        return name.strip()[:255]
    parts = (claims.get("given_name"), claims.get("family_name"))
    return " ".join(p.strip() for p in parts if isinstance(p, str) and p.strip())[:255]


def valid_nhs_number(value: str) -> bool:
    """A valid NHS number (:func:`dhr.record.nhs_number.is_valid_nhs_number`)."""
    return is_valid_nhs_number(value)
