"""Collectors: read a source and emit events with the position they were read up to."""
