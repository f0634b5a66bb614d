"""Who a request acts as, and the impersonation headers that make the API server see that user.

The gateway never acts with rights of its own: it reviews the caller's token and then sends every API
request with `Impersonate-*` headers, so Kubernetes RBAC decides exactly as it would for `kubectl`.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

# Bytes RFC 9110 allows in a header name beside letters and digits; anything else in an extra's key (its
# `/`, for one) travels percent-encoded, as client-go sends it and the API server decodes it.
_HEADER_NAME_PUNCTUATION = "!#$&'*+-.^_`|~"


@dataclass(frozen=True)
class Identity:
    """A user as a TokenReview describes it."""

    username: str
    groups: tuple[str, ...] = ()
    extra: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @classmethod
    def from_token_review(cls, user: Mapping[str, Any]) -> Identity:
        extra = user.get("extra") or {}
        return cls(
            username=str(user.get("username") or ""),
            groups=tuple(str(group) for group in user.get("groups") or ()),
            extra={str(key).lower(): tuple(str(v) for v in values or ()) for key, values in extra.items()},
        )


class NotImpersonableError(Exception):
    """A user the gateway must not act for: forwarding them only in part could widen what they may do."""


def impersonation_headers(identity: Identity, forwarded_extras: Sequence[str]) -> list[tuple[str, str]]:
    """The `Impersonate-*` headers that act as `identity`. A user's `extra` keys outside `forwarded_extras`
    are refused rather than dropped: an authorizer may read an extra (token scopes, say) as a restriction."""
    unknown = sorted(set(identity.extra) - set(forwarded_extras))
    if unknown:
        raise NotImpersonableError(
            f"the gateway does not forward the user attribute(s) {', '.join(unknown)}: "
            "add them to HEADWATER_GATEWAY_IMPERSONATED_EXTRAS and its RBAC to serve this user"
        )
    headers = [("Impersonate-User", identity.username)]
    headers += [("Impersonate-Group", group) for group in identity.groups]
    for key, values in sorted(identity.extra.items()):
        name = "Impersonate-Extra-" + urllib.parse.quote(key, safe=_HEADER_NAME_PUNCTUATION)
        headers += [(name, value) for value in values]
    return headers
