"""service: the REST API for sweeps, the embedded local stack and the CLI client (issue [service])."""
