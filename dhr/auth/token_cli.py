"""``dhr token``: get an access token as a SMART Backend Services client, for use by hand.

https://hl7.org/fhir/smart-app-launch/backend-services.html#obtaining-an-access-token: the
client signs a JWT assertion (RS384 or ES384, ``kid``, ``iss`` = ``sub`` = client id, ``aud`` =
the token URL, ``exp`` at most five minutes ahead, a fresh ``jti``) and posts it with
``grant_type=client_credentials``. ``dhr keygen`` writes a key pair for such a client: the
private JWK stays with the client, the public JWK Set goes to ``dhr clients add --jwks``.

    TOKEN=$(dhr token --client-id gp-system --key gp-system.key.json --scope 'system/*.rs')
    curl -H "Authorization: Bearer $TOKEN" http://127.0.0.1:8080/fhir/Patient
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey

from dhr.config import Settings
from dhr.fhir.ids import new_id

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ASSERTION_SECONDS = 240  # under the five minutes the spec allows


def new_key_pair(alg: str, kid: str | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """A new private JWK (RS384: RSA 2048; ES384: P-384) and the public JWK Set to register."""
    if alg == "RS384":
        key: RSAKey | ECKey = RSAKey.generate_key(2048, private=True)
    elif alg == "ES384":
        key = ECKey.generate_key("P-384", private=True)
    else:
        raise ValueError("alg must be RS384 or ES384")
    key.ensure_kid()
    private = dict(key.as_dict(private=True))
    private.update(alg=alg, use="sig")
    if kid:
        private["kid"] = kid
    public = {k: v for k, v in private.items() if k not in {"d", "p", "q", "dp", "dq", "qi"}}
    return private, {"keys": [public]}


def client_assertion(private_jwk: dict[str, Any], client_id: str, token_url: str) -> str:
    """A signed client assertion for ``private_key_jwt`` (RFC 7523 section 3)."""
    alg = str(private_jwk.get("alg") or ("ES384" if private_jwk.get("kty") == "EC" else "RS384"))
    key: RSAKey | ECKey = (
        ECKey.import_key(private_jwk)
        if private_jwk.get("kty") == "EC"
        else RSAKey.import_key(private_jwk)
    )
    now = int(time.time())
    claims = {
        "iss": client_id,
        "sub": client_id,
        "aud": token_url,
        "exp": now + ASSERTION_SECONDS,
        "iat": now,
        "jti": new_id(),
    }
    header = {"alg": alg, "kid": private_jwk["kid"], "typ": "JWT"}
    return jwt.encode(header, claims, key, algorithms=[alg])


def request_token(
    token_url: str, client_id: str, private_jwk: dict[str, Any], scope: str
) -> httpx.Response:
    form = {
        "grant_type": "client_credentials",
        "scope": scope,
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": client_assertion(private_jwk, client_id, token_url),
    }
    return httpx.post(token_url, data=form, timeout=30)


def _token(args: argparse.Namespace, settings: Settings) -> int:
    token_url = args.token_url or f"{settings.auth_base}/token"
    private = json.loads(Path(args.key).read_text(encoding="utf-8"))
    try:
        response = request_token(token_url, args.client_id, private, args.scope)
    except httpx.HTTPError as exc:
        print(f"dhr token: cannot reach {token_url}: {exc}", file=sys.stderr)
        return 1
    if response.status_code != 200:
        print(f"dhr token: {response.status_code} {response.text}", file=sys.stderr)
        return 1
    body = response.json()
    print(json.dumps(body, indent=2) if args.json else body["access_token"])
    return 0


def _new_key(args: argparse.Namespace, _settings: Settings) -> int:
    private, public = new_key_pair(args.alg, args.kid)
    out = Path(args.out)
    out.write_text(json.dumps(private, indent=2) + "\n", encoding="utf-8")
    out.chmod(0o600)
    jwks_path = Path(args.jwks_out or str(out).removesuffix(".json") + ".jwks.json")
    jwks_path.write_text(json.dumps(public, indent=2) + "\n", encoding="utf-8")
    print(
        f"private key: {out} (keep it secret)\npublic JWK Set: {jwks_path} (dhr clients add --jwks)"
    )
    return 0


def add_parser(subparsers: Any) -> None:
    """Register ``dhr token`` and ``dhr keygen``."""
    token = subparsers.add_parser(
        "token", help="get an access token as a backend client (client_credentials)"
    )
    token.add_argument("--client-id", required=True)
    token.add_argument("--key", required=True, help="the client's private JWK (JSON file)")
    token.add_argument("--scope", default="system/*.rs")
    token.add_argument("--token-url", default=None, help="default: {issuer}/auth/token")
    token.add_argument("--json", action="store_true", help="print the whole token response")
    token.set_defaults(func=_token)
    keygen = subparsers.add_parser(
        "keygen", help="make a key pair for a backend client (private JWK + public JWK Set)"
    )
    keygen.add_argument("--alg", choices=["RS384", "ES384"], default="RS384")
    keygen.add_argument("--kid", default=None)
    keygen.add_argument("--out", required=True, help="where the private JWK goes")
    keygen.add_argument("--jwks-out", default=None)
    keygen.set_defaults(func=_new_key)
