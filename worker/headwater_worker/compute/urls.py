"""URLs of the compute protocol as they may be shown, and as they are given to a service."""

from __future__ import annotations

import urllib.parse

from ..logs import redact


def shown_url(url: str) -> str:
    """A URL fit for a status, a message or a log: scheme, host, port and path. A callback URL may carry
    credentials in its userinfo or a token in its query; neither is shown."""
    parts = urllib.parse.urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    host = url_host(parts.hostname or "")
    netloc = f"{host}:{port}" if port is not None else host
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def register_url_secrets(url: str) -> None:
    """Have the redactor hide the URL's password and query values wherever a library repeats them."""
    parts = urllib.parse.urlsplit(url)
    redact.add(parts.password and urllib.parse.unquote(parts.password))
    for _name, value in urllib.parse.parse_qsl(parts.query):
        redact.add(value)


def url_host(host: str) -> str:
    """A host as it goes into a URL: an IPv6 address in brackets."""
    return f"[{host}]" if ":" in host and not host.startswith("[") else host
