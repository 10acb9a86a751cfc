"""DHR's own SMART App Launch 2.2 authorisation server and the bearer-token check.

https://hl7.org/fhir/smart-app-launch/ (App Launch, Backend Services, scopes v1/v2). The server
issues signed JWT access tokens; :mod:`dhr.auth.principal` turns a bearer token into the
:class:`dhr.auth.model.Principal` every request carries; ``dhr.enforce`` decides what it may do.
"""
