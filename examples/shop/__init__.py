"""A small shop API with its own test suite: the example for running a project's tests through
the engine (``pytest examples/shop/tests --fastrapi-engine``)."""
