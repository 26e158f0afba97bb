"""`interloper-pipelines worker`: claims queued runs and executes them (see `worker`)."""
