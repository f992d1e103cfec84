"""Shippers: deliver batches of spooled events to a destination."""
