"""kopf handlers; importing this package registers all of them."""

from . import children, connector, exportjob, owners, settings, unimplemented

__all__ = ["children", "connector", "exportjob", "owners", "settings", "unimplemented"]
