"""Example apps: ``fastrapi-compat run examples.hello:app`` from the repository root."""
