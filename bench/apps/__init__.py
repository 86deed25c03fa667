"""The applications the benchmark serves: one FastAPI app (for uvicorn, granian and our
engine) and its FastrAPI equivalent."""
