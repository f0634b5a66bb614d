"""`headwater-gateway`: serve the gateway with uvicorn, its settings from `HEADWATER_GATEWAY_*` variables."""

from __future__ import annotations

import logging
import sys

import uvicorn
from headwater_worker import logs
from pydantic import ValidationError

from .app import create_app
from .settings import GatewaySettings


def configure_logging(settings: GatewaySettings) -> None:
    level = getattr(logging, settings.log_level.upper())
    if settings.log_format == "json":
        logs.setup(level)
    else:
        logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # uvicorn's own loggers write through the root handler; its access log is replaced by the gateway's.
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True


def main(argv: list[str] | None = None) -> int:
    if sys.argv[1:] if argv is None else argv:
        print(
            "headwater-gateway takes no arguments: its settings are HEADWATER_GATEWAY_* variables",
            file=sys.stderr,
        )
        return 2
    try:
        settings = GatewaySettings()
    except ValidationError as error:
        for item in error.errors():
            where = ".".join(str(part) for part in item["loc"])
            name = f"HEADWATER_GATEWAY_{where.upper()}" if where else "settings"
            print(f"headwater-gateway: {name}: {item['msg']}", file=sys.stderr)
        return 2
    configure_logging(settings)
    try:
        app = create_app(settings)
    except ValueError as error:
        print(f"headwater-gateway: {error}", file=sys.stderr)
        return 2
    uvicorn.run(
        app, host=settings.host, port=settings.port, log_config=None, access_log=False, proxy_headers=False
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
