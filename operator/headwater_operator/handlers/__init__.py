"""kopf handlers; importing this package registers all of them."""

from . import children, computetask, connector, exportjob, owners, package, settings, wrapper

__all__ = [
    "children",
    "computetask",
    "connector",
    "exportjob",
    "owners",
    "package",
    "settings",
    "wrapper",
]
