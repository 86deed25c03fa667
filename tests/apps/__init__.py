"""FastAPI apps served by both uvicorn and the engine in the differential tests.

Each module has ``create_app()`` returning a fresh app, so each server gets its own state.
"""
