"""Fixtures of the unified-record tests: two registered source systems (sources_fixture)."""

from tests.dhr.record.sources_fixture import feeds, source_backends

__all__ = ["feeds", "source_backends"]
