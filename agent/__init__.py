"""Device agent: register, lease, fetch, build the engine locally, measure, report."""
