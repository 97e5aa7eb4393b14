"""Real collections into the prepared format: files or zips, metadata, worker processes, rejected inputs."""
