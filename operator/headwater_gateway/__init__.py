"""Headwater gateway: the seeds' REST APIs over the custom resources, Kubernetes the only authority."""
