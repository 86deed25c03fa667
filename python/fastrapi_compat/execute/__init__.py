"""Request time on the native tier: the request object, the layers around a route's handler
(500 and exception handlers), parameters, the body, serialization, and the pool thread path."""
