"""Registering source systems (:func:`dhr.record.sources.register_source`) on a real database.

ARCHITECTURE.md "The unified record", Source systems: a source is a registered SMART Backend
Services client (https://hl7.org/fhir/smart-app-launch/backend-services.html) bound to an
organisation and a supplier, one source per client; what it sends carries ``meta.source``.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy import Engine, delete

from dhr.auth.clients import deactivate_client
from dhr.auth.model import ClientKind
from dhr.record.sources import Source, SourceRegistrationError, register_source
from dhr.record.vocab import SOURCE_URI_PREFIX
from dhr.store import source_store
from dhr.store.db import unit_of_work
from tests.dhr.auth.fixtures_clients import jwks, register, rsa_key


@pytest.fixture
def engine(engine: Engine) -> Engine:
    """The session's database with no sources registered (clients outlive each test, so each
    test makes clients of its own)."""
    with engine.begin() as conn:
        conn.execute(delete(source_store.SOURCE))
    return engine


def backend(engine: Engine, organisation: str | None = None) -> str:
    """A fresh backend client (private_key_jwt) and its id."""
    client_id = f"gp-system-{uuid.uuid4().hex[:8]}"
    register(
        engine,
        ClientKind.BACKEND,
        client_id=client_id,
        jwks=jwks(rsa_key()),
        organisation=organisation,
    )
    return client_id


def add(engine: Engine, source_id: str, client_id: str, **kwargs: Any) -> Source:
    values: dict[str, Any] = {"name": "Orchard Surgery EMIS Web", "supplier": "emis"}
    values["ods_code"] = "A81001"
    values.update(kwargs)
    with unit_of_work(engine, write=True) as conn:
        return register_source(conn, source_id=source_id, client_id=client_id, **values)


def refused(engine: Engine, source_id: str, client_id: str, **kwargs: Any) -> str:
    with pytest.raises(SourceRegistrationError) as info:
        add(engine, source_id, client_id, **kwargs)
    return str(info.value)


def test_register_normalises_and_stores(engine: Engine) -> None:
    client = backend(engine, organisation="A81001")
    source = add(
        engine,
        "orchard-emis",
        client,
        ods_code=" a81001 ",
        identifier_systems=["https://emis.example/Id/patient", "urn:oid:2.16.840.1.113883.2.1.4"],
    )
    assert source.supplier == "EMIS"
    assert source.ods_code == "A81001"
    assert source.uri == SOURCE_URI_PREFIX + "orchard-emis"
    with unit_of_work(engine, write=False) as conn:
        stored = source_store.get_source(conn, "orchard-emis")
        by_client = source_store.source_for_client(conn, client)
    assert stored == source == by_client
    assert stored.identifier_systems == (
        "https://emis.example/Id/patient",
        "urn:oid:2.16.840.1.113883.2.1.4",
    )


@pytest.mark.parametrize(
    ("source_id", "kwargs", "message"),
    [
        ("Orchard", {}, "lowercase letters"),
        ("a" * 65, {}, "1-64"),
        ("-orchard", {}, "starting with"),
        ("orchard", {"supplier": "ACME"}, "unknown supplier 'ACME'"),
        ("orchard", {"ods_code": "A8-1001"}, "is not an ODS code"),
        ("orchard", {"ods_code": "AB"}, "is not an ODS code"),
        ("orchard", {"name": "  "}, "needs a name"),
        ("orchard", {"identifier_systems": ["patient-ids"]}, "absolute URI"),
    ],
)
def test_malformed_registrations_are_refused(
    engine: Engine, source_id: str, kwargs: dict[str, object], message: str
) -> None:
    assert message in refused(engine, source_id, backend(engine), **kwargs)


def test_unknown_client_is_refused(engine: Engine) -> None:
    assert "no client 'nobody'" in refused(engine, "orchard", "nobody")


def test_public_and_symmetric_clients_are_refused(engine: Engine) -> None:
    public, _ = register(engine, ClientKind.PUBLIC, client_id=f"app-{uuid.uuid4().hex[:8]}")
    message = refused(engine, "orchard", public.client_id)
    assert "is a public client" in message
    assert "must be a backend client" in message
    confidential, _ = register(
        engine, ClientKind.CONFIDENTIAL_SYMMETRIC, client_id=f"web-{uuid.uuid4().hex[:8]}"
    )
    message = refused(engine, "orchard", confidential.client_id)
    assert "is a confidential-symmetric client" in message


def test_revoked_client_is_refused(engine: Engine) -> None:
    client = backend(engine)
    assert deactivate_client(engine, client)
    assert "is revoked" in refused(engine, "orchard", client)


def test_client_bound_to_another_organisation_is_refused(engine: Engine) -> None:
    client = backend(engine, organisation="B82002")
    assert "bound to organisation B82002, not A81001" in refused(engine, "orchard", client)


def test_duplicates_are_refused(engine: Engine) -> None:
    client, other = backend(engine), backend(engine)
    add(engine, "orchard", client)
    assert "source 'orchard' is already registered" in refused(engine, "orchard", other)
    message = refused(engine, "orchard-two", client)
    assert "already the client of source 'orchard'" in message
    with unit_of_work(engine, write=True) as conn:
        assert source_store.set_source_active(conn, "orchard", False)
    # An inactive source still holds its client: one source per client, ever.
    assert "already the client of source 'orchard'" in refused(engine, "orchard-two", client)


def test_a_refused_registration_writes_nothing(engine: Engine) -> None:
    refused(engine, "orchard", backend(engine), supplier="ACME")
    with unit_of_work(engine, write=False) as conn:
        assert source_store.list_sources(conn) == []


def test_list_and_deactivate(engine: Engine) -> None:
    emis, tpp = backend(engine), backend(engine)
    add(engine, "orchard-emis", emis)
    add(engine, "riverside-tpp", tpp, supplier="TPP", ods_code="B82002", name="Riverside")
    with unit_of_work(engine, write=True) as conn:
        assert [s.source_id for s in source_store.list_sources(conn)] == [
            "orchard-emis",
            "riverside-tpp",
        ]
        assert source_store.set_source_active(conn, "riverside-tpp", False)
        assert not source_store.set_source_active(conn, "nowhere", False)
    with unit_of_work(engine, write=False) as conn:
        listed = {s.source_id: s.active for s in source_store.list_sources(conn)}
        assert listed == {"orchard-emis": True, "riverside-tpp": False}
        # Attribution follows only active sources: a deactivated source's client writes as no one.
        assert source_store.source_for_client(conn, tpp) is None
        assert source_store.source_by_client(conn, tpp) is not None
        found = source_store.source_for_client(conn, emis)
        assert found is not None
        assert found.source_id == "orchard-emis"
    with unit_of_work(engine, write=True) as conn:
        assert source_store.set_source_active(conn, "riverside-tpp", True)
    with unit_of_work(engine, write=False) as conn:
        again = source_store.source_for_client(conn, tpp)
    assert again is not None
    assert again.source_id == "riverside-tpp"
