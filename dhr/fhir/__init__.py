"""FHIR R4 building blocks shared by every interaction: JSON, types, ids, dates, validation."""
