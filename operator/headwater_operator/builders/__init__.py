"""Pure builders of child manifests: spec in, manifest out, nothing read from or written to the API."""
