"""A strict test SIEM (Splunk HEC + Elasticsearch _bulk) for the shipper tests.

`python -m tests.siem.server --port N` runs it alone; tests.siem.fixtures has the
pytest fixtures.
"""
