"""The pipeline stages every event passes (redaction, session join, spool, shipping).

Imports the base only; collectors and shippers reach it through the registry."""
