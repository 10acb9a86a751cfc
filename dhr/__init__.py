"""DHR: one digital health record, served as a FHIR R4 (4.0.1) server.

https://hl7.org/fhir/R4/http.html is the contract the ``dhr`` package implements.
"""

__version__ = "0.1.0"
