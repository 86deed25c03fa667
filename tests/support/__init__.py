"""Shared helpers for the differential tests: servers in threads and response comparison."""
