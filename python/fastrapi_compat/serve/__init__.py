"""The server: starting and stopping the engine, the one dispatcher, lifespan, the thread pool
for synchronous plans, workers and log output."""
