"""kopf handlers; importing this package registers all of them."""

from . import children, connector, exportjob, owners, settings, unimplemented, wrapper

__all__ = ["children", "connector", "exportjob", "owners", "settings", "unimplemented", "wrapper"]
