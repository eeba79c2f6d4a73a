"""The HTTP API on port 5681: status, dataplanes, Prometheus metrics, bootstrap, hooks."""
