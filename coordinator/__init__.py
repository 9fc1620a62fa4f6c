"""Coordinator: gRPC servicer, job queue with leases, artifact store, results store, Ray orchestration."""
