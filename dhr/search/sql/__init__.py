"""SQL predicates for parsed search values, one module per parameter type.

https://hl7.org/fhir/R4/search.html#ptypes. Each function returns a boolean SQLAlchemy expression
over one (aliased) index table or the ``resource`` table; every value is a bound parameter.
"""
