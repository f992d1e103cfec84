"""Shippers against the strict test SIEM (tests/siem) over loopback."""
