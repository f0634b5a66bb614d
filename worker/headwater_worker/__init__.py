"""Headwater worker: what runs inside the Jobs and Deployments."""
