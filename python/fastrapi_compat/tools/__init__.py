"""The command line tools: ``fastrapi-compat run|explain|check``, the schema-driven comparison
against stock FastAPI, and the comparison rules the project's differential tests share."""
