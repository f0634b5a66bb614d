"""kopf handlers; importing this package registers all of them."""

from . import exportjob, settings, unimplemented

__all__ = ["exportjob", "settings", "unimplemented"]
