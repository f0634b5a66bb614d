"""Who a request acts as: the bearer token's user (a TokenReview says who), or, in unauthenticated mode,
the configured ServiceAccount."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from .identity import Identity
from .kube import KubeApi, RefusalError
from .problems import ProblemError
from .settings import GatewaySettings

CHALLENGE = {"WWW-Authenticate": 'Bearer realm="headwater"'}
bearer = HTTPBearer(auto_error=False, description="A Kubernetes token of the user the gateway acts as.")


def settings_of(request: Request) -> GatewaySettings:
    settings: GatewaySettings = request.app.state.settings
    return settings


def kube_of(request: Request) -> KubeApi:
    kube: KubeApi = request.app.state.kube
    return kube


async def caller(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Identity:
    """The identity every API request of this HTTP request impersonates."""
    settings = settings_of(request)
    if settings.unauthenticated:
        assert settings.service_account_username is not None
        # Without groups the API server gives a ServiceAccount its own (`system:serviceaccounts...`), and the
        # gateway needs no right to impersonate groups.
        identity = Identity(settings.service_account_username)
    elif credentials is None:
        raise ProblemError(401, "an Authorization: Bearer <token> header is required", headers=CHALLENGE)
    else:
        try:
            reviewed = await kube_of(request).review_token(credentials.credentials, settings.token_audiences)
        except RefusalError as refusal:
            # The gateway's own fault (its RBAC), not the caller's: not a 403 of theirs.
            raise ProblemError(
                503, f"the gateway cannot review tokens: {refusal.message}", kind="gateway-auth"
            ) from None
        if reviewed is None:
            raise ProblemError(401, "the bearer token was not accepted", headers=CHALLENGE)
        identity = reviewed
    request.state.user = identity.username
    return identity


Caller = Annotated[Identity, Depends(caller)]
Kube = Annotated[KubeApi, Depends(kube_of)]
Settings = Annotated[GatewaySettings, Depends(settings_of)]
