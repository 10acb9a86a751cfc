"""Storage: the schema, engines and sessions, and the one repository where resource SQL lives."""
