"""service: the REST API for sweeps (FastAPI, SQLAlchemy, Ray Jobs), the embedded local stack and the CLI client."""
