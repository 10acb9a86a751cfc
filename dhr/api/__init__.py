"""The HTTP edge: FastAPI routes, content negotiation and FHIR headers."""
