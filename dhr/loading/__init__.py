"""Helpers for ``dhr load`` (:mod:`dhr.loader`): file discovery and reading, and progress output.

The loader itself sends every resource through :func:`dhr.api.dispatch.handle`, the write path
the REST API uses (https://hl7.org/fhir/R4/http.html).
"""
