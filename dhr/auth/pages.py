"""The few HTML pages of the authorisation server: sign-in (with links to external identity
providers, :mod:`dhr.auth.federation`), patient picker, errors.

SMART App Launch 2.2 (https://hl7.org/fhir/smart-app-launch/app-launch.html#obtain-authorization-code)
leaves the user interaction to the server. Every interpolated value goes through
:func:`html.escape`; pages are never cached, never framed (clickjacking) and load nothing from
elsewhere (a Content-Security-Policy allows only the inline style below).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from html import escape

from starlette.responses import HTMLResponse

SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "Pragma": "no-cache",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'"
    ),
}

_STYLE = """
body{font-family:system-ui,sans-serif;max-width:40rem;margin:2rem auto;padding:0 1rem;color:#212b32}
h1{font-size:1.4rem}label{display:block;margin-top:.8rem}
input[type=text],input[type=password],input[type=search]{width:100%;padding:.4rem;font-size:1rem}
button{margin-top:1rem;padding:.5rem 1rem;font-size:1rem}
.error{background:#fde8e8;border-left:4px solid #d5281b;padding:.6rem}
table{border-collapse:collapse;width:100%;margin-top:1rem}td,th{text-align:left;padding:.3rem;
border-bottom:1px solid #d8dde0}.muted{color:#4c6272}
"""


def _e(value: object) -> str:
    return escape(str(value), quote=True)


def page(
    title: str, body: str, status: int = 200, headers: Mapping[str, str] | None = None
) -> HTMLResponse:
    """A complete HTML page; ``body`` must already be escaped."""
    html = (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width,initial-scale=1">'
        f"<title>{_e(title)}</title><style>{_STYLE}</style></head>"
        f"<body><h1>{_e(title)}</h1>{body}</body></html>"
    )
    return HTMLResponse(html, status_code=status, headers={**SECURITY_HEADERS, **(headers or {})})


def hidden_fields(fields: Iterable[tuple[str, str]]) -> str:
    return "".join(f'<input type=hidden name="{_e(k)}" value="{_e(v)}">' for k, v in fields)


def error_page(
    title: str, message: str, status: int = 400, link: tuple[str, str] | None = None
) -> HTMLResponse:
    """An error the browser shows instead of redirecting (bad client or redirect URI);
    ``link`` is an optional ``(text, href)`` way on (e.g. back to the sign-in page)."""
    way_on = f'<p><a href="{_e(link[1])}">{_e(link[0])}</a></p>' if link else ""
    return page(title, f"<p class=error>{_e(message)}</p>{way_on}", status)


def login_page(
    *,
    action: str,
    next_url: str,
    csrf: str,
    username: str = "",
    message: str = "",
    status: int = 200,
    providers: Iterable[tuple[str, str]] = (),
) -> HTMLResponse:
    """The sign-in form; ``message`` is shown above it (e.g. wrong password).

    ``providers`` are ``(display name, URL)`` of external identity providers, each offered as a
    "Sign in with ..." link under the form.
    """
    error = f"<p class=error role=alert>{_e(message)}</p>" if message else ""
    others = "".join(
        f'<p><a class=idp href="{_e(url)}">Sign in with {_e(name)}</a></p>'
        for name, url in providers
    )
    body = (
        f'{error}<form method=post action="{_e(action)}">'
        + hidden_fields([("next", next_url), ("csrf", csrf)])
        + "<label for=username>Username</label>"
        "<input type=text id=username name=username autocomplete=username required"
        f' value="{_e(username)}">'
        "<label for=password>Password</label>"
        "<input type=password id=password name=password autocomplete=current-password required>"
        "<button type=submit>Sign in</button></form>"
    )
    if others:
        body += f"<p class=muted>Or use your organisation's sign-in:</p>{others}"
    return page("Sign in to DHR", body, status)


def signed_in_page(display: str) -> HTMLResponse:
    return page("Signed in", f"<p>You are signed in as {_e(display)}. You can close this page.</p>")


@dataclass(frozen=True)
class PatientRow:
    """One patient offered in the picker."""

    id: str
    name: str
    birth_date: str
    gender: str
    nhs_number: str


def picker_page(
    *,
    action: str,
    app_name: str,
    user_display: str,
    fields: list[tuple[str, str]],
    csrf: str,
    query: str,
    patients: list[PatientRow],
    message: str = "",
) -> HTMLResponse:
    """Search for a patient and choose the one the app will work with (or cancel)."""
    hidden = hidden_fields([*fields, ("csrf", csrf)])
    note = f"<p class=error role=alert>{_e(message)}</p>" if message else ""
    search = (
        f'<form method=post action="{_e(action)}">{hidden}'
        "<label for=q>Patient name or NHS number</label>"
        f'<input type=search id=q name=patient_search value="{_e(query)}" required minlength=2>'
        "<button type=submit>Search</button></form>"
    )
    rows = "".join(
        "<tr>"
        f"<td>{_e(p.name)}</td><td>{_e(p.birth_date)}</td><td>{_e(p.gender)}</td>"
        f"<td>{_e(p.nhs_number)}</td><td>"
        f'<form method=post action="{_e(action)}">{hidden}'
        f'<button type=submit name=patient value="{_e(p.id)}">Choose</button></form></td>'
        "</tr>"
        for p in patients
    )
    results = ""
    if query:
        results = (
            "<table><tr><th>Name</th><th>Born</th><th>Gender</th><th>NHS number</th><th></th></tr>"
            f"{rows}</table>"
            if patients
            else "<p>No patient matched.</p>"
        )
    cancel = (
        f'<form method=post action="{_e(action)}">{hidden}'
        "<button type=submit name=decision value=deny>Cancel</button></form>"
    )
    intro = (
        f"<p class=muted>Signed in as {_e(user_display)}. Choose the patient "
        f"{_e(app_name)} will open.</p>"
    )
    return page("Choose a patient", intro + note + search + results + cancel)
