"""Demo credentials for ``make run``: users, a SMART app and a GP-system backend client.

Enough to try every flow of SMART App Launch 2.2 (https://hl7.org/fhir/smart-app-launch/) by
hand: sign in as a GP, a nurse, a patient or a privacy officer through a standalone launch of
the public demo app (PKCE S256), and call the API as a GP system with Backend Services
(``dhr token``). Created once and left alone afterwards (idempotent); the passwords are fixed
and printed because they guard demo data only. Never run this against a real database.
"""

from __future__ import annotations

import base64
import hashlib
import json
import shlex
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

from sqlalchemy import Engine

from dhr.auth import clients, users
from dhr.auth.model import ClientKind
from dhr.auth.token_cli import new_key_pair
from dhr.config import Settings
from dhr.demo_data import GP_ID, NURSE_ID, OLIVIA, PRIVACY_ID

OLIVIA_NHS = "9434765919"

APP_ID = "demo-smart-app"
APP_REDIRECT = "http://127.0.0.1:8765/callback"
APP_SCOPES = (
    "openid fhirUser launch launch/patient launch/encounter offline_access online_access "
    "patient/*.rs user/*.cruds"
)
BACKEND_ID = "demo-gp-system"
BACKEND_SCOPES = "system/*.cruds"
ORCHARD_ODS = "Y90001"
# A fixed PKCE verifier so the printed authorise URL works as is (demo only).
DEMO_VERIFIER = "dhr-demo-verifier-0123456789-abcdefghijklmnopqrstuvwxyz"


@dataclass(frozen=True)
class DemoUser:
    username: str
    password: str
    role: str
    fhir_user: str
    organisation: str | None
    who: str


DEMO_USERS = (
    DemoUser("gp", "demo-gp-pass", "R8000", f"Practitioner/{GP_ID}", ORCHARD_ODS,
             "Dr Priya Shah, GP at Orchard Surgery"),
    DemoUser("nurse", "demo-nurse-pass", "R8001", f"Practitioner/{NURSE_ID}", ORCHARD_ODS,
             "Tom Baker, practice nurse"),
    DemoUser("olivia", "demo-patient-pass", "patient", f"Patient/{OLIVIA}", None,
             "Olivia Jones, a patient"),
    DemoUser("privacy", "demo-privacy-pass", "R0001", f"Practitioner/{PRIVACY_ID}", ORCHARD_ODS,
             "Sam Lee, privacy officer"),
)  # fmt: skip


def code_challenge(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def _ensure_users(engine: Engine) -> None:
    for u in DEMO_USERS:
        if users.get_user(engine, u.username) is None:
            users.add_user(
                engine,
                username=u.username,
                password=u.password,
                role=u.role,
                fhir_user=u.fhir_user,
                organisation=u.organisation,
                display=u.who,
            )


def _ensure_clients(settings: Settings, engine: Engine) -> Path:
    if clients.get_client(engine, APP_ID) is None:
        clients.register_client(
            engine,
            client_id=APP_ID,
            name="DHR demo SMART app",
            kind=ClientKind.PUBLIC,
            redirect_uris=(APP_REDIRECT,),
            scopes=APP_SCOPES,
            origins=("http://127.0.0.1:8765",),
            launch_uri="http://127.0.0.1:8765/launch",
        )
    key_path = settings.data_dir.resolve() / f"{BACKEND_ID}.key.json"
    if clients.get_client(engine, BACKEND_ID) is None:
        private, public = new_key_pair("RS384")
        key_path.parent.mkdir(parents=True, exist_ok=True)
        key_path.write_text(json.dumps(private, indent=2) + "\n", encoding="utf-8")
        key_path.chmod(0o600)
        clients.register_client(
            engine,
            client_id=BACKEND_ID,
            name="Orchard Surgery GP system (demo)",
            kind=ClientKind.BACKEND,
            scopes=BACKEND_SCOPES,
            organisation=ORCHARD_ODS,
            jwks=public,
        )
    return key_path


def ensure_demo_credentials(settings: Settings, engine: Engine) -> str:
    """Create the demo users and clients if missing; return the text ``make run`` prints."""
    _ensure_users(engine)
    key_path = _ensure_clients(settings, engine)
    auth, base = settings.auth_base, settings.fhir_base
    authorise = f"{auth}/authorize?" + urlencode(
        {
            "response_type": "code",
            "client_id": APP_ID,
            "redirect_uri": APP_REDIRECT,
            "scope": "openid fhirUser launch/patient patient/*.rs offline_access",
            "state": "demo",
            "aud": base,
            "code_challenge": code_challenge(DEMO_VERIFIER),
            "code_challenge_method": "S256",
        }
    )
    key = shlex.quote(str(key_path))
    lines = [
        "Demo credentials (demo data only; every FHIR request needs a bearer token):",
        *(f"  {u.username} / {u.password}  ({u.role}: {u.who})" for u in DEMO_USERS),
        f"  SMART app: client_id {APP_ID} (public, PKCE S256, redirect {APP_REDIRECT})",
        f"  GP-system backend client: {BACKEND_ID} (private_key_jwt, private key {key_path}"
        + ("" if key_path.is_file() else ": MISSING, remove dhr-data to start afresh")
        + ")",
        "Try (SMART discovery, then Backend Services as the GP system):",
        f"  curl {base}/.well-known/smart-configuration",
        f"  TOKEN=$(.venv/bin/dhr token --client-id {BACKEND_ID} --key {key} "
        "--scope 'system/*.cruds')",
        f'  curl -H "Authorization: Bearer $TOKEN" {base}/Patient/{OLIVIA}',
        f'  curl -H "Authorization: Bearer $TOKEN" {base}/Patient/{OLIVIA}/_history',
        f'  curl -H "Authorization: Bearer $TOKEN" \'{base}/Patient?identifier='
        f"https://fhir.nhs.uk/Id/nhs-number|{OLIVIA_NHS}'",
        f"  curl -H \"Authorization: Bearer $TOKEN\" '{base}/Patient/{OLIVIA}/$everything'",
        f'  curl -H "Authorization: Bearer $TOKEN" -X POST {base}/Patient '
        "-H 'Content-Type: application/fhir+json' "
        '-d \'{"resourceType":"Patient","name":[{"family":"Test"}]}\'',
        "Try a standalone launch in a browser (sign in as olivia, or gp to get a patient picker):",
        f"  {authorise}",
        "  then copy the code from the address bar (nothing listens on 127.0.0.1:8765) and:",
        f"  curl -X POST {auth}/token -d grant_type=authorization_code -d client_id={APP_ID} "
        f"-d redirect_uri={APP_REDIRECT} -d code_verifier={DEMO_VERIFIER} -d code=CODE",
    ]
    return "\n".join(lines)
