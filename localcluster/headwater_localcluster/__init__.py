"""A local Kubernetes control plane for development and tests."""
