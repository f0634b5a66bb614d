"""The gateway's HTTP routes, one module per seed API (and one for what is not implemented yet)."""
