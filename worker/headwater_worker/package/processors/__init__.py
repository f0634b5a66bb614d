"""The processors Headwater ships; each module is one dataset, each `VersionN` class one version of it."""
