"""The npm ``fhirclient`` (SMART on FHIR JavaScript client) in headless Chromium.

A real browser app, served from its own origin, does a standalone launch with PKCE against the
running server (https://hl7.org/fhir/smart-app-launch/app-launch.html): ``FHIR.oauth2.authorize``
reads the SMART discovery document and redirects to DHR's sign-in page; after the patient signs
in, ``FHIR.oauth2.ready`` redeems the code at the token endpoint and the app reads the patient and
searches Observations, all cross-origin (so CORS for registered origins is exercised too).
The library comes from ``tests/js`` (``npm ci`` in ``make test``); Chromium from Debian.
"""

from __future__ import annotations

import functools
import json
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from sqlalchemy import Engine

from tests.conftest import LiveServer
from tests.dhr.auth import flow

CHROMIUM = Path("/usr/bin/chromium")
JS = Path(__file__).resolve().parents[2] / "js"
LIBRARY = JS / "node_modules" / "fhirclient" / "build" / "fhir-client.min.js"

pytestmark = pytest.mark.skipif(
    not (CHROMIUM.exists() and LIBRARY.exists()),
    reason="NPM FHIRCLIENT BROWSER TEST SKIPPED: needs /usr/bin/chromium and "
    "tests/js/node_modules (make test runs scripts/ensure-chromium and npm ci)",
)

if CHROMIUM.exists():
    from playwright.sync_api import sync_playwright


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        return

    def translate_path(self, path: str) -> str:
        if path.split("?", maxsplit=1)[0].endswith("/fhir-client.min.js"):
            return str(LIBRARY)
        return super().translate_path(path)


@pytest.fixture
def app_origin() -> Iterator[str]:
    """The SMART app's own web server (another origin than DHR's)."""
    handler = functools.partial(_Quiet, directory=str(JS / "app"))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def _observation(patient: str, code: str) -> dict[str, object]:
    return {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
        "subject": {"reference": f"Patient/{patient}"},
    }


def test_npm_fhirclient_standalone_launch_reads_and_searches_in_chromium(
    server: LiveServer, engine: Engine, app_origin: str
) -> None:
    app = flow.register_app(
        engine, redirect_uris=(f"{app_origin}/app.html",), origins=(app_origin,)
    )
    server.app.state.cors_origins.invalidate()
    mine = flow.store_patient(engine, "Smith", "Jane")
    other = flow.store_patient(engine, "Jones", "Mary")
    flow.store_resource(engine, _observation(mine, "8867-4"))
    flow.store_resource(engine, _observation(other, "8310-5"))
    jane = flow.add_patient_user(engine, mine)
    launch = f"{app_origin}/launch.html?" + urlencode(
        {
            "client_id": app.client_id,
            "iss": server.base,
            "scope": "openid fhirUser launch/patient patient/*.rs",
        }
    )
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        try:
            page = browser.new_page()
            page.goto(launch)
            page.wait_for_selector("input[name=username]")
            page.fill("input[name=username]", jane.username)
            page.fill("input[name=password]", flow.PASSWORD)
            page.click("button[type=submit]")
            page.wait_for_url(f"{app_origin}/app.html**")
            page.wait_for_function(
                "document.getElementById('out').textContent !== 'waiting'", timeout=20_000
            )
            text = page.inner_text("#out")
        finally:
            browser.close()
    assert not text.startswith("ERROR"), text
    assert json.loads(text) == {"patient": mine, "family": "Smith", "codes": ["8867-4"]}
