"""Compressed request bodies (RFC 9110 section 8.4, 15.5.16): gzip and deflate are decoded;
any other coding is a 415 saying what is accepted; a broken or inflating body is a 4xx."""

from __future__ import annotations

import gzip
import zlib

import httpx
import orjson
import pytest

from dhr.api.content_coding import decode
from dhr.errors import FhirError
from tests.helpers import assert_outcome, created_id, patient

FHIR = {"Content-Type": "application/fhir+json"}


def raw_deflate(data: bytes) -> bytes:
    packer = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return packer.compress(data) + packer.flush()


@pytest.mark.parametrize(
    ("coding", "pack"),
    [
        ("gzip", gzip.compress),
        ("x-gzip", gzip.compress),
        ("deflate", zlib.compress),
        ("deflate", raw_deflate),
        ("identity", lambda b: b),
    ],
    ids=["gzip", "x-gzip", "deflate-zlib", "deflate-raw", "identity"],
)
def test_a_compressed_create_is_stored_as_if_sent_plain(
    client: httpx.Client, coding: str, pack: object
) -> None:
    body = orjson.dumps(patient(name=[{"family": f"Packed-{coding}"}]))
    sent = pack(body)  # type: ignore[operator]
    created = client.post("Patient", content=sent, headers={**FHIR, "Content-Encoding": coding})
    assert created.status_code == 201, created.text
    stored = client.get(f"Patient/{created_id(created)}").json()
    assert stored["name"] == [{"family": f"Packed-{coding}"}]


def test_a_compressed_transaction_bundle_is_processed(client: httpx.Client) -> None:
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"resource": patient(), "request": {"method": "POST", "url": "Patient"}}
            for _ in range(50)
        ],
    }
    answer = client.post(
        "",
        content=gzip.compress(orjson.dumps(bundle)),
        headers={**FHIR, "Content-Encoding": "gzip"},
    )
    assert answer.status_code == 200, answer.text
    assert len(answer.json()["entry"]) == 50


def test_an_unknown_coding_is_415_naming_what_is_accepted(client: httpx.Client) -> None:
    answer = client.post("Patient", content=b"\x1b\x00", headers={**FHIR, "Content-Encoding": "br"})
    assert_outcome(answer, 415)
    assert answer.headers["accept-encoding"] == "gzip, deflate"


def test_a_broken_or_truncated_gzip_body_is_400(client: httpx.Client) -> None:
    whole = gzip.compress(orjson.dumps(patient()))
    for broken in (b"not gzip at all", whole[: len(whole) // 2], whole + b"trailing"):
        answer = client.post(
            "Patient", content=broken, headers={**FHIR, "Content-Encoding": "gzip"}
        )
        assert_outcome(answer, 400)
    assert client.get("Patient?_count=1&_total=accurate").json()["total"] == 0


def test_a_body_that_inflates_past_the_limit_is_413_without_inflating_it_all() -> None:
    bomb = gzip.compress(b"{" + b" " * (64 * 1024 * 1024) + b"}")  # 64 MB from about 64 kB
    assert len(bomb) < 100_000
    with pytest.raises(FhirError) as refused:
        decode(bomb, "gzip", 1024 * 1024)
    assert refused.value.status == 413
    assert decode(gzip.compress(b"{}"), "gzip", 1024) == b"{}"
    assert decode(gzip.compress(zlib.compress(b"{}")), "deflate, gzip", 1024) == b"{}"
