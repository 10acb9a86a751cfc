"""The demo credentials ``make run`` prints (:mod:`dhr.demo_auth`) really work.

The backend client gets a token with ``dhr token`` (SMART Backend Services,
https://hl7.org/fhir/smart-app-launch/backend-services.html) and reads the demo patient; the
printed standalone-launch URL, signed in as the demo patient, ends in a token for her own record
when redeemed with the printed PKCE verifier (https://hl7.org/fhir/smart-app-launch/app-launch.html).
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from urllib.parse import parse_qs, urlsplit

import httpx
from sqlalchemy import Engine

from dhr.demo import load_demo
from dhr.demo_auth import APP_ID, APP_REDIRECT, DEMO_USERS, ensure_demo_credentials
from dhr.demo_data import OLIVIA
from tests.conftest import LiveServer
from tests.dhr.auth import flow


def _printed(server: LiveServer, engine: Engine) -> str:
    load_demo(server.settings, engine)
    return ensure_demo_credentials(server.settings, engine)


def test_printing_twice_creates_nothing_new_and_names_every_role(
    server: LiveServer, engine: Engine
) -> None:
    first = _printed(server, engine)
    assert ensure_demo_credentials(server.settings, engine) == first
    for user in DEMO_USERS:
        assert f"{user.username} / {user.password}" in first
    assert {u.role for u in DEMO_USERS} == {"R8000", "R8001", "patient", "R0001"}


def test_the_printed_dhr_token_command_gets_a_backend_token_that_reads_the_demo(
    server: LiveServer, engine: Engine
) -> None:
    text = _printed(server, engine)
    line = next(x for x in text.splitlines() if "dhr token" in x)
    command = shlex.split(re.search(r"\$\((.*)\)", line).group(1))  # type: ignore[union-attr]
    assert command[0].endswith("dhr")
    env = {"DHR_BASE_URL": server.base, "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-m", "dhr.cli", *command[1:]],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    token = done.stdout.strip()
    read = httpx.get(
        f"{server.base}/Patient/{OLIVIA}", headers={"Authorization": f"Bearer {token}"}
    )
    assert read.status_code == 200, read.text
    assert httpx.get(f"{server.base}/Patient/{OLIVIA}").status_code == 401


def test_the_printed_standalone_launch_works_for_the_demo_patient(
    server: LiveServer, engine: Engine
) -> None:
    text = _printed(server, engine)
    url = next(x.strip() for x in text.splitlines() if "/auth/authorize?" in x)
    curl = next(x for x in text.splitlines() if "grant_type=authorization_code" in x)
    form = dict(part.split("=", 1) for part in re.findall(r"-d (\S+)", curl))
    olivia = next(u for u in DEMO_USERS if u.role == "patient")
    with flow.browser(server) as http:
        first = http.get(url)
        assert first.status_code == 303, first.text
        next_url = flow.query_of(first)["next"]
        login = http.get("/auth/login", params={"next": next_url})
        signed = http.post(
            "/auth/login",
            data={
                "username": olivia.username,
                "password": olivia.password,
                "next": flow.hidden(login.text, "next"),
                "csrf": flow.hidden(login.text, "csrf"),
            },
        )
        assert signed.status_code == 303, signed.text
        back = http.get(signed.headers["location"])
        location = back.headers["location"]
        assert location.startswith(APP_REDIRECT + "?")
        form["code"] = parse_qs(urlsplit(location).query)["code"][0]
        assert form["client_id"] == APP_ID
        answer = http.post("/auth/token", data=form)
    assert answer.status_code == 200, answer.text
    assert answer.json()["patient"] == OLIVIA
    token = answer.json()["access_token"]
    own = httpx.get(f"{server.base}/Patient/{OLIVIA}", headers={"Authorization": f"Bearer {token}"})
    assert own.status_code == 200, own.text
