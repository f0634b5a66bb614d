"""kopf handlers; importing this package registers all of them."""

from . import children, computetask, connector, exportjob, owners, settings, unimplemented, wrapper

__all__ = [
    "children",
    "computetask",
    "connector",
    "exportjob",
    "owners",
    "settings",
    "unimplemented",
    "wrapper",
]
