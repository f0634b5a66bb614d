"""The gateway's settings, read from `HEADWATER_GATEWAY_*` environment variables (the chart sets them)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal, Self

from headwater_operator.api.common import DNS_LABEL_PATTERN
from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

# What the API server puts into `extra` of a ServiceAccount token's TokenReview: the gateway may forward
# exactly these (its RBAC names each one; RBAC has no wildcard for them).
SERVICE_ACCOUNT_EXTRAS = (
    "authentication.kubernetes.io/credential-id",
    "authentication.kubernetes.io/node-name",
    "authentication.kubernetes.io/node-uid",
    "authentication.kubernetes.io/pod-name",
    "authentication.kubernetes.io/pod-uid",
)
SERVICE_ACCOUNT_PATTERN = DNS_LABEL_PATTERN.removesuffix("$") + ":" + DNS_LABEL_PATTERN.removeprefix("^")


CommaList = Annotated[tuple[str, ...], NoDecode]


class GatewaySettings(BaseSettings):
    """Everything the gateway reads at start; an invalid value stops it with a message naming the variable."""

    model_config = SettingsConfigDict(env_prefix="HEADWATER_GATEWAY_", frozen=True, extra="ignore")

    host: str = Field(default="0.0.0.0", description="Address to listen on.")  # noqa: S104 - a pod's port
    port: int = Field(default=8000, ge=1, le=65535, description="Port to listen on.")
    namespace: str = Field(
        default="default",
        pattern=DNS_LABEL_PATTERN,
        max_length=63,
        description="Namespace of the custom resources of requests that name none (`/namespaces/{ns}/...`).",
    )
    default_service: str | None = Field(
        default=None,
        description="Built-in compute service served at the bare root (`/status`, `/compute`, "
        "`/tasks/{id}/status`); empty: only under `/services/{slug}/`.",
    )
    unauthenticated: bool = Field(
        default=False,
        description="Serve requests without a token, acting as `service_account` (a trusted network only).",
    )
    service_account: str | None = Field(
        default=None,
        pattern=SERVICE_ACCOUNT_PATTERN,
        description="`<namespace>:<name>` of the ServiceAccount the gateway acts as when unauthenticated.",
    )
    impersonated_extras: CommaList = Field(
        default=SERVICE_ACCOUNT_EXTRAS,
        description="Keys of a user's `extra` the gateway forwards (comma-separated); a user carrying any "
        "other is refused, because dropping one could widen what an authorizer allows.",
    )
    token_audiences: CommaList = Field(
        default=(),
        description="Audiences a token must be valid for (comma-separated); empty: the API server's own.",
    )
    kubeconfig: Path | None = Field(
        default=None,
        description="Kubeconfig with the gateway's own credentials; absent: in a pod its ServiceAccount, "
        "elsewhere `KUBECONFIG` or `~/.kube/config`.",
    )
    api_timeout_seconds: float = Field(
        default=10.0, gt=0, le=300, description="Seconds one Kubernetes API request may take."
    )
    s3_force_path_style: bool = Field(
        default=True,
        description="Address a ServiceTask's bucket path-style at its `s3_host` (what MinIO and most "
        "S3-compatible servers need).",
    )
    log_format: Literal["json", "plain"] = Field(default="json", description="Log lines as JSON or text.")
    log_level: Literal["debug", "info", "warning", "error"] = Field(default="info", description="Log level.")

    @field_validator("impersonated_extras", "token_audiences", mode="before")
    @classmethod
    def _split_commas(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(item.strip() for item in value.split(",") if item.strip())
        return value

    @field_validator("default_service", "service_account", "kubeconfig", mode="before")
    @classmethod
    def _empty_is_absent(cls, value: object) -> object:
        # The chart renders an unset value as an empty variable.
        return None if value == "" else value

    @model_validator(mode="after")
    def _service_account_when_unauthenticated(self) -> Self:
        if self.unauthenticated and not self.service_account:
            raise ValueError(
                "HEADWATER_GATEWAY_SERVICE_ACCOUNT (<namespace>:<name>) is required when "
                "HEADWATER_GATEWAY_UNAUTHENTICATED is true"
            )
        return self

    @property
    def service_account_username(self) -> str | None:
        return f"system:serviceaccount:{self.service_account}" if self.service_account else None
