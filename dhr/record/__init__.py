"""The unified record: source systems, idempotent ingest, one patient per NHS number,
provenance and joint controllers (ARCHITECTURE.md "The unified record")."""
