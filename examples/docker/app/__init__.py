"""The service's components."""
