"""Index extraction internals (https://hl7.org/fhir/R4/search.html).

A FHIRPath compiler (``paths``) and one module per search parameter type.
"""
