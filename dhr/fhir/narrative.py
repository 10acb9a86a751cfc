"""What a resource's narrative may hold: https://hl7.org/fhir/R4/narrative.html#xhtml.

``Narrative.div`` is "a stripped down version of XHTML": only the basic formatting elements of
HTML 4.0 (chapters 7-11, except section 4 of chapter 9, and 15), ``<a>`` elements, images and
style attributes; the content "SHALL NOT contain a head, a body, external stylesheet
references, scripts, forms, base/link/xlink, frames, iframes and objects" (invariant txt-1).
fhir.resources checks none of it, and a record's narrative is shown to clinicians and patients,
so a narrative carrying a script, an event handler or a ``javascript:`` link is refused (400)
instead of stored. Not enforced: txt-2 ("some non-whitespace content"), which official R4
examples break (an empty ``<div>``); it is about quality, not safety.

The check is an allow-list of elements and attributes read with the standard library's HTML
tokenizer (character references decoded, so ``&#106;avascript:`` is seen for what it is). The
same narrative text is checked once (Synthea and GP systems send the same boilerplate many times).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import lru_cache
from html.parser import HTMLParser
from typing import Any

from dhr.errors import bad_request

# HTML 4.0 chapters 7-11 (structure, text, lists, tables) without 9.4 (del/ins are 9.4: kept
# out), chapter 15 (alignment, font styles, rules), <a> and <img>.
ELEMENTS = frozenset(
    """div span p br hr pre blockquote q address h1 h2 h3 h4 h5 h6 em strong dfn code samp kbd
    var cite abbr acronym sub sup b i u s strike tt big small center font bdo a img map area
    ul ol li dl dt dd dir menu table caption thead tbody tfoot tr th td col colgroup""".split()  # noqa: SIM905
)
ATTRIBUTES = frozenset(
    """id class style title lang xml:lang dir xmlns href name rel rev charset hreflang type
    shape coords tabindex accesskey src alt longdesc height width usemap ismap align valign
    border cellpadding cellspacing frame rules summary abbr axis headers scope rowspan colspan
    char charoff span nowrap bgcolor color face size noshade clear start value compact cite
    datetime""".split()  # noqa: SIM905
)
_URL_ATTRIBUTES = frozenset({"href", "src", "longdesc", "usemap", "cite"})
# A link or image points into the resource (#id), at a relative reference, or at these schemes.
_SAFE_SCHEMES = frozenset({"http", "https", "ftp", "mailto", "tel", "urn"})
_ACTIVE_STYLE = ("expression(", "javascript:", "vbscript:", "behavior:", "-moz-binding")
_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.\-]*):")
_IGNORED = re.compile(r"[\x00-\x20\x7f]+")  # what browsers skip inside a URL's scheme
MAX_PROBLEM = 120


class NarrativeError(ValueError):
    """Why a narrative is refused."""


class _Reader(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self.root is None:
            self.root = tag
            if tag != "div":
                raise NarrativeError(f"the narrative must be one <div>, not <{tag}>")
        if tag not in ELEMENTS:
            raise NarrativeError(f"<{tag[:40]}> is not allowed in a narrative")
        for name, value in attrs:
            _check_attribute(tag, name, value or "")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)

    def handle_data(self, data: str) -> None:
        if data.strip() and self.root is None:
            raise NarrativeError("the narrative must be one <div>, with no text outside it")

    def handle_pi(self, data: str) -> None:
        raise NarrativeError("a processing instruction is not allowed in a narrative")

    def handle_decl(self, decl: str) -> None:
        raise NarrativeError("a declaration is not allowed in a narrative")

    def unknown_decl(self, data: str) -> None:
        raise NarrativeError("a declaration is not allowed in a narrative")


def _check_attribute(tag: str, name: str, value: str) -> None:
    if name.startswith("on"):
        raise NarrativeError(f"the event attribute {name[:40]!r} is not allowed in a narrative")
    if name not in ATTRIBUTES and not name.startswith("xmlns:"):
        raise NarrativeError(f"the attribute {name[:40]!r} of <{tag}> is not allowed")
    if name in _URL_ATTRIBUTES:
        _check_url(tag, name, value)
    elif name == "style":
        lowered = _IGNORED.sub("", value).lower()
        if any(marker in lowered for marker in _ACTIVE_STYLE):
            raise NarrativeError("a style may not run anything (expression(), script URLs)")


def _check_url(tag: str, name: str, value: str) -> None:
    url = _IGNORED.sub("", value)
    scheme = _SCHEME.match(url)
    if scheme is None:
        return  # #id, or a relative reference
    found = scheme.group(1).lower()
    if found in _SAFE_SCHEMES:
        return
    if tag == "img" and name == "src" and url[:11].lower() == "data:image/":
        return  # an image carried inside the narrative
    raise NarrativeError(f"{name}={found}: URLs are not allowed in a narrative")


@lru_cache(maxsize=4096)
def narrative_problem(div: str) -> str | None:
    """Why the XHTML ``div`` breaks the narrative rules, or None when it keeps them."""
    reader = _Reader()
    try:
        reader.feed(div)
        reader.close()
    except NarrativeError as exc:
        return str(exc)[:MAX_PROBLEM]
    if reader.root is None:
        return "the narrative must be one <div>"
    return None


def _narratives(data: dict[str, Any], path: str) -> Iterator[tuple[str, Any]]:
    """(FHIRPath, div) of the resource's narrative and of the resources it carries: contained
    ones, a Bundle's entries and a Parameters' resources (in parts too)."""
    text = data.get("text")
    if isinstance(text, dict) and "div" in text:
        yield f"{path}.text.div", text["div"]
    for key in ("contained", "entry", "parameter"):
        for i, item in _dicts(data.get(key)):
            where = f"{path}.{key}[{i}]"
            if key == "contained":
                yield from _narratives(item, where)
                continue
            if isinstance(item.get("resource"), dict):
                yield from _narratives(item["resource"], f"{where}.resource")
            if key == "parameter":
                yield from _parts(item, where)


def _parts(parameter: dict[str, Any], path: str) -> Iterator[tuple[str, Any]]:
    for i, part in _dicts(parameter.get("part")):
        if isinstance(part.get("resource"), dict):
            yield from _narratives(part["resource"], f"{path}.part[{i}].resource")
        yield from _parts(part, f"{path}.part[{i}]")


def _dicts(items: Any) -> Iterator[tuple[int, dict[str, Any]]]:
    if isinstance(items, list):
        for i, item in enumerate(items):
            if isinstance(item, dict):
                yield i, item


def check_narratives(res_type: str, data: dict[str, Any]) -> None:
    """Refuse (400, naming the element) a resource whose narrative, or a narrative of a
    resource it carries, breaks the rules above."""
    for path, div in _narratives(data, res_type):
        problem = narrative_problem(div) if isinstance(div, str) else "the narrative is not text"
        if problem is not None:
            raise bad_request(f"{path}: {problem}", "unsafe-narrative", path)
