"""Patch engines for the FHIR patch interaction (https://hl7.org/fhir/R4/http.html#patch).

:mod:`dhr.patch.jsonpatch` applies JSON Patch (RFC 6902) documents and
:mod:`dhr.patch.fhirpath_patch` applies FHIRPath Patch ``Parameters``
(https://hl7.org/fhir/R4/fhirpatch.html). Both work on a copy of a resource's JSON and either
return the patched copy or raise a :class:`dhr.errors.FhirError`, so a failed patch changes
nothing. Both follow one rule for errors:

* **400** when the patch document itself is malformed, whatever resource it is applied to
  (not the right shape, a missing or unknown member, an unknown operation, a pointer or
  FHIRPath that does not parse);
* **422** when a well-formed patch cannot be applied to this resource (a target that does not
  exist, an index out of range, a failed JSON Patch ``test``, a path matching several elements).
"""
