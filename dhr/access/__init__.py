"""Access control for the FHIR API: who may do what, as pure decisions the enforcing repository
(:mod:`dhr.enforce`) applies. SMART App Launch 2.2 scopes:
https://hl7.org/fhir/smart-app-launch/scopes-and-launch-context.html
"""
