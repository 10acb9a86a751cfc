"""The sign-in page and the patient picker in a real browser (headless Debian Chromium).

SMART App Launch 2.2 standalone launch (https://hl7.org/fhir/smart-app-launch/app-launch.html):
the user's browser follows the authorisation request to DHR's sign-in form, a clinician picks a
patient, and the browser lands on the app's redirect URI with a code. Playwright drives
``/usr/bin/chromium`` (installed by ``scripts/ensure-chromium``); it never downloads a browser.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from sqlalchemy import Engine

from tests.conftest import LiveServer
from tests.dhr.auth import flow

CHROMIUM = Path("/usr/bin/chromium")

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="BROWSER TESTS SKIPPED: /usr/bin/chromium is missing (scripts/ensure-chromium)",
)

if CHROMIUM.exists():
    from playwright.sync_api import Browser, Page, Route, sync_playwright


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context()
    opened = context.new_page()

    def app(route: Route) -> None:  # the SMART app's redirect URI (no network here)
        route.fulfill(status=200, content_type="text/html", body="<h1>The app</h1>")

    opened.route(f"{flow.REDIRECT}**", app)
    yield opened
    context.close()


def _start(page: Page, server: LiveServer, params: dict[str, str]) -> None:
    page.goto(f"{server.settings.auth_base}/authorize?{urlencode(params)}")
    assert page.locator("input[name=username]").is_visible()


def _sign_in(page: Page, username: str) -> None:
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", flow.PASSWORD)
    page.click("button[type=submit]")


def _code(page: Page) -> str:
    page.wait_for_url(f"{flow.REDIRECT}?**")
    assert page.inner_text("h1") == "The app"
    return parse_qs(urlsplit(page.url).query)["code"][0]


def test_a_patient_signs_in_and_the_browser_lands_on_the_app_with_a_code(
    page: Page, server: LiveServer, engine: Engine
) -> None:
    app = flow.register_app(engine)
    mine = flow.store_patient(engine, "Smith", "Jane")
    jane = flow.add_patient_user(engine, mine)
    _, challenge = flow.pkce()
    _start(page, server, flow.auth_params(server, app, challenge))
    _sign_in(page, "nobody-" + jane.username)  # a wrong user first: the form says so
    assert page.locator("[role=alert]").is_visible()
    _sign_in(page, jane.username)
    assert flow.code_row(engine, _code(page))["patient"] == mine


def test_a_clinician_finds_and_chooses_a_patient_in_the_picker(
    page: Page, server: LiveServer, engine: Engine
) -> None:
    app = flow.register_app(engine)
    flow.store_patient(engine, "Jones", "Mary")
    wanted = flow.store_patient(engine, "Okafor", "Amara", nhs_number="9449310602")
    house = flow.add_staff_user(engine)
    _, challenge = flow.pkce()
    params = flow.auth_params(server, app, challenge, scope="launch/patient user/*.rs")
    _start(page, server, params)
    _sign_in(page, house.username)
    page.fill("input[name=patient_search]", "Okafor")
    page.click("text=Search")
    row = page.locator("tr", has_text="Okafor")
    assert "9449310602" in row.inner_text()
    assert page.locator("tr", has_text="Jones").count() == 0
    row.locator("button[name=patient]").click()
    assert flow.code_row(engine, _code(page))["patient"] == wanted


def test_cancelling_in_the_picker_sends_access_denied_to_the_app(
    page: Page, server: LiveServer, engine: Engine
) -> None:
    app = flow.register_app(engine)
    house = flow.add_staff_user(engine)
    _, challenge = flow.pkce()
    params = flow.auth_params(server, app, challenge, scope="launch/patient user/*.rs")
    _start(page, server, params)
    _sign_in(page, house.username)
    page.click("button[name=decision]")
    page.wait_for_url(f"{flow.REDIRECT}?**")
    query = parse_qs(urlsplit(page.url).query)
    assert query["error"] == ["access_denied"]
    assert query["state"] == [params["state"]]
