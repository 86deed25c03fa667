"""Differential tests: every request goes to stock uvicorn and to the engine; answers must match."""
