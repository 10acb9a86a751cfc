"""The consent and joint-controller policy layer (decides; ``dhr.enforce`` enforces).

https://hl7.org/fhir/R4/consent.html. Filled in by the consent issue; until the authorisation
issue lands the server runs open (see ``dhr.enforce``).
"""
