"""Compile time: an app's route table and middleware into plans for the native tier (the
compiler, flat plans, live app tracking, native middleware decisions) and ``internals``, the
only module that reads FastAPI's and Starlette's internals."""
