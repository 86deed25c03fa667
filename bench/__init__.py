"""Benchmark harness: fastrapi-compat against FastAPI+uvicorn, FastAPI+granian and FastrAPI.

Run it from the repository root with ``python -m bench`` (``--help`` lists the options);
``bench/README.md`` says what is measured and how.
"""
