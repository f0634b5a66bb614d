"""Types shared by every Headwater kind, and the CEL rules that give models and CRDs the same checks.

Conventions (all kinds):

- Wire names are camelCase (pydantic aliases); Python names are snake_case. Models accept both.
- ``status.phase`` is a single PascalCase word. Where a seed defines a status vocabulary the phase is that
  vocabulary capitalised (a Wrapper's ``executing`` is the phase ``Executing``); the gateway lower-cases it.
  Vocabularies that are a wire protocol of their own (a ComputeTask's ``status.status``, a Wrapper's
  ``status.health``) keep their exact spelling in a separate field.
- ``status.conditions`` follow the kstatus convention: ``Ready``, ``Reconciling`` and ``Stalled``, each with
  ``observedGeneration``, so ``kubectl wait --for=condition=Ready``, Argo CD and Flux read health correctly.
- Optional fields are absent rather than null. The schemas are not ``nullable``: the API server drops a
  ``null`` written by a user before validation, so ``has(self.field)`` in a CEL rule means "set".
- Every cross-field rule is a :class:`CelRule`: the CEL expression goes into the CRD's
  ``x-kubernetes-validations`` and its Python twin runs when the model is validated, so the operator, the
  gateway and unit tests see the same rules the API server enforces.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any, ClassVar, Final, Literal, Self, get_args

from pydantic import BaseModel, ConfigDict, Field, GetJsonSchemaHandler, ValidationError, model_validator
from pydantic.alias_generators import to_camel
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import InitErrorDetails, PydanticCustomError
from pydantic_core import core_schema as cs

GROUP = "headwater.dev"
VERSION = "v1alpha1"
API_VERSION: Final = "headwater.dev/v1alpha1"
assert f"{GROUP}/{VERSION}" == API_VERSION
CATEGORY = "headwater"

# --------------------------------------------------------------------------------------------------
# Patterns and bounds. Patterns are anchored and free of look-arounds, so that the API server (RE2)
# and pydantic read them the same way.
# --------------------------------------------------------------------------------------------------

DNS_SUBDOMAIN_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
DNS_LABEL_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
CONFIGMAP_KEY_PATTERN = r"^[-._a-zA-Z0-9]+$"
CRON_PATTERN = (
    r"^(@(yearly|annually|monthly|weekly|daily|midnight|hourly)"
    r"|[0-9A-Za-z*?/,-]+( +[0-9A-Za-z*?/,-]+){4})$"
)
TIME_ZONE_PATTERN = r"^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+)*$"
HTTP_URL_PATTERN = r"^https?://[^\s/?#]+[^\s]*$"
UUID_PATTERN = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
BUCKET_PATTERN = r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$"
RELATIVE_PATH_PATTERN = r"^([^/\s][^\s]*)?$"
CONDITION_TYPE_PATTERN = (
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$"
)
CONDITION_REASON_PATTERN = r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$"

MAX_NAME = 253
MAX_LABEL = 63
MAX_URL = 2048
MAX_KEY = 1024
MAX_MESSAGE = 32768

# Reusable annotated string types. A field adds its own description with ``Field(description=...)``.
ObjectName = Annotated[str, Field(min_length=1, max_length=MAX_NAME, pattern=DNS_SUBDOMAIN_PATTERN)]
LabelName = Annotated[str, Field(min_length=1, max_length=MAX_LABEL, pattern=DNS_LABEL_PATTERN)]
ConfigMapKey = Annotated[str, Field(min_length=1, max_length=MAX_NAME, pattern=CONFIGMAP_KEY_PATTERN)]
SecretKey = ConfigMapKey
CronSchedule = Annotated[str, Field(min_length=1, max_length=128, pattern=CRON_PATTERN)]
TimeZone = Annotated[str, Field(min_length=1, max_length=64, pattern=TIME_ZONE_PATTERN)]
HttpUrl = Annotated[
    str,
    Field(min_length=8, max_length=MAX_URL, pattern=HTTP_URL_PATTERN, json_schema_extra={"format": "uri"}),
]
Uuid = Annotated[
    str, Field(min_length=36, max_length=36, pattern=UUID_PATTERN, json_schema_extra={"format": "uuid"})
]
Message = Annotated[str, Field(max_length=MAX_MESSAGE)]


# --------------------------------------------------------------------------------------------------
# CEL rules with their Python twins
# --------------------------------------------------------------------------------------------------

CelReason = Literal["FieldValueInvalid", "FieldValueRequired", "FieldValueForbidden", "FieldValueDuplicate"]


@dataclass(frozen=True)
class CelRule:
    """One ``x-kubernetes-validations`` entry of an object's schema.

    ``rule`` is the CEL expression (``self`` is the object); ``message`` names the fields involved, with
    their wire names; ``field_path`` (like ``.tasks``) makes the API server report the error at that
    field. ``check`` is the same rule in Python, evaluated on the model; ``None`` marks a rule only the
    API server can evaluate (a transition rule that reads ``oldSelf``).
    """

    rule: str
    message: str
    check: Callable[[Any], bool] | None
    field_path: str | None = None
    reason: CelReason | None = None

    def to_schema(self) -> dict[str, str]:
        entry = {"rule": self.rule, "message": self.message}
        if self.field_path is not None:
            entry["fieldPath"] = self.field_path
        if self.reason is not None:
            entry["reason"] = self.reason
        return entry


def exactly_one(*wire_names: str, field_path: str | None = None) -> CelRule:
    """A rule that exactly one of the given optional fields is set."""
    py_names = [_snake(name) for name in wire_names]
    listed = ", ".join(wire_names[:-1]) + f" or {wire_names[-1]}" if len(wire_names) > 1 else wire_names[0]
    terms = " + ".join(f"(has(self.{name}) ? 1 : 0)" for name in wire_names)
    return CelRule(
        rule=f"{terms} == 1",
        message=f"exactly one of {listed} must be set",
        check=lambda m: sum(getattr(m, name) is not None for name in py_names) == 1,
        field_path=field_path or f".{wire_names[0]}",
    )


def _error(message: str, loc: tuple[str | int, ...], value: Any) -> InitErrorDetails:
    return InitErrorDetails(type=PydanticCustomError("cel_rule", message), loc=loc, input=value)


def nested_models(model: type[BaseModel]) -> list[type[BaseModel]]:
    """The model and every model reachable through its fields' annotations, each once, parents first."""
    found: list[type[BaseModel]] = []
    pending: list[Any] = [model]
    while pending:
        annotation = pending.pop(0)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            if annotation in found:
                continue
            found.append(annotation)
            pending.extend(info.annotation for info in annotation.model_fields.values())
        else:
            pending.extend(get_args(annotation))
    return found


def _snake(wire_name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", wire_name).lower()


# --------------------------------------------------------------------------------------------------
# Base models
# --------------------------------------------------------------------------------------------------


class ApiModel(BaseModel):
    """Base of every spec model: camelCase on the wire, unknown fields refused, CEL rules checked."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
    )

    cel_rules: ClassVar[Sequence[CelRule]] = ()

    @model_validator(mode="after")
    def _check_cel_rules(self) -> Self:
        errors: list[InitErrorDetails] = []
        for rule in type(self).cel_rules:
            if rule.check is not None and not rule.check(self):
                path = tuple(part for part in (rule.field_path or "").split(".") if part)
                errors.append(_error(rule.message, path, self._value_at(path)))
        for loc, message in self._duplicate_keys():
            errors.append(_error(message, loc, self._value_at(loc[:1])))
        if errors:
            # Raised from a validator, a ValidationError keeps its locations below the model's own, so the
            # error names the field (`spec.tasks`), as the API server's does.
            raise ValidationError.from_exception_data(type(self).__name__, errors)
        return self

    def _value_at(self, loc: tuple[str | int, ...]) -> Any:
        value: Any = self
        for part in loc:
            value = getattr(value, _snake(str(part)), None)
        return value.to_wire() if isinstance(value, ApiModel) else value

    def _duplicate_keys(self) -> list[tuple[tuple[str | int, ...], str]]:
        """What the API server refuses for ``x-kubernetes-list-type`` ``set`` and ``map``: duplicates."""
        problems: list[tuple[tuple[str | int, ...], str]] = []
        for name, info in type(self).model_fields.items():
            extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
            list_type = extra.get("x-kubernetes-list-type")
            value = getattr(self, name)
            if not value or list_type not in ("set", "map"):
                continue
            if list_type == "set":
                keys = [(item,) for item in value]
            else:
                map_keys = extra.get("x-kubernetes-list-map-keys") or []
                assert isinstance(map_keys, list)
                keys = [tuple(getattr(item, _snake(str(key))) for key in map_keys) for item in value]
            seen: set[tuple[Any, ...]] = set()
            for index, key in enumerate(keys):
                if key in seen:
                    shown = key[0] if len(key) == 1 else key
                    problems.append(((info.alias or name, index), f"duplicate entry {shown!r}"))
                seen.add(key)
        return problems

    @classmethod
    def __get_pydantic_json_schema__(
        cls, core_schema: cs.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        json_schema = handler(core_schema)
        rules = cls.__dict__.get("cel_rules", ())
        if rules:
            target = handler.resolve_ref_schema(json_schema)
            target["x-kubernetes-validations"] = [rule.to_schema() for rule in rules]
        return json_schema

    def to_wire(self, *, exclude_none: bool = True) -> dict[str, Any]:
        """The object as the API server stores it: camelCase keys, JSON types, absent optionals dropped."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=exclude_none)


class StatusModel(ApiModel):
    """Base of status models: tolerant of fields written by a newer operator."""

    model_config = ConfigDict(extra="ignore")


# --------------------------------------------------------------------------------------------------
# References to other objects
# --------------------------------------------------------------------------------------------------


class SecretRef(ApiModel):
    """A Secret in the same namespace as the resource."""

    name: ObjectName = Field(description="Name of the Secret, in the resource's namespace.")


class SecretKeyRef(ApiModel):
    """One key of a Secret in the same namespace as the resource."""

    name: ObjectName = Field(description="Name of the Secret, in the resource's namespace.")
    key: SecretKey = Field(description="Key inside the Secret's data.")


class DsnSecretKeyRef(SecretKeyRef):
    """The Secret key holding a PostgreSQL connection string (``postgresql://user:password@host:5432/db``)."""

    key: SecretKey = Field(default="dsn", description="Key inside the Secret's data holding the DSN.")


class ConfigMapRef(ApiModel):
    """A ConfigMap in the same namespace as the resource."""

    name: ObjectName = Field(description="Name of the ConfigMap, in the resource's namespace.")


class ConfigMapKeyRef(ApiModel):
    """One key of a ConfigMap in the same namespace as the resource (``data`` or ``binaryData``)."""

    name: ObjectName = Field(description="Name of the ConfigMap, in the resource's namespace.")
    key: ConfigMapKey = Field(description="Key inside the ConfigMap's data or binaryData.")


class DatabaseRef(ApiModel):
    """A PostgreSQL database, reached through a DSN kept in a Secret."""

    secret_ref: DsnSecretKeyRef = Field(
        description="Secret key holding the PostgreSQL DSN (for example "
        "`postgresql://user:password@host:5432/dbname`). The DSN reaches the workload only as an environment "
        "variable taken from the Secret; it never appears in status, events or logs."
    )


# --------------------------------------------------------------------------------------------------
# Storage locations
# --------------------------------------------------------------------------------------------------


class S3CredentialsRef(ApiModel):
    """A Secret holding an S3 access key pair."""

    name: ObjectName = Field(description="Name of the Secret, in the resource's namespace.")
    access_key_id_key: SecretKey = Field(
        default="AWS_ACCESS_KEY_ID", description="Key inside the Secret holding the access key id."
    )
    secret_access_key_key: SecretKey = Field(
        default="AWS_SECRET_ACCESS_KEY", description="Key inside the Secret holding the secret access key."
    )


class S3Bucket(ApiModel):
    """A bucket on an S3-protocol object store (AWS S3 or any compatible server)."""

    bucket: str = Field(
        min_length=3,
        max_length=63,
        pattern=BUCKET_PATTERN,
        description="Bucket name (3 to 63 lower-case letters, digits, dots and dashes).",
    )
    endpoint: HttpUrl | None = Field(
        default=None,
        description="Endpoint URL of an S3-compatible server, such as `http://minio.storage:9000`. "
        "Absent means AWS S3 in `region`.",
    )
    region: str = Field(
        default="us-east-1",
        min_length=1,
        max_length=64,
        pattern=r"^[a-z0-9-]+$",
        description="Region of the bucket.",
    )
    force_path_style: bool = Field(
        default=False,
        description="Address objects as `<endpoint>/<bucket>/<key>` instead of `<bucket>.<endpoint>/<key>`; "
        "most S3-compatible servers need this.",
    )
    credentials_secret_ref: S3CredentialsRef | None = Field(
        default=None,
        description="Secret holding the access key pair (keys `AWS_ACCESS_KEY_ID` and "
        "`AWS_SECRET_ACCESS_KEY` unless overridden). Absent means the workload's ambient credentials "
        "(for example a service account bound to a cloud role).",
    )


class S3Location(S3Bucket):
    """A folder (key prefix) in an S3-protocol bucket."""

    prefix: str = Field(
        default="",
        max_length=MAX_KEY,
        pattern=RELATIVE_PATH_PATTERN,
        description="Key prefix under which objects are read or written, without a leading slash "
        "(`exports/daily`); empty means the bucket's root.",
    )


class S3Object(S3Bucket):
    """One object in an S3-protocol bucket."""

    key: str = Field(
        min_length=1,
        max_length=MAX_KEY,
        pattern=RELATIVE_PATH_PATTERN,
        description="Object key, without a leading slash (`sources/indicator.csv`).",
    )


_NO_DOTDOT = "(^|/)[.][.](/|$)"


class VolumeLocation(ApiModel):
    """A folder inside a PersistentVolumeClaim in the resource's namespace."""

    cel_rules: ClassVar[Sequence[CelRule]] = (
        CelRule(
            rule=f"!self.path.matches('{_NO_DOTDOT}')",
            message="path must stay inside the volume: no '..' segments",
            check=lambda m: re.search(_NO_DOTDOT, m.path) is None,
            field_path=".path",
        ),
    )

    claim_name: ObjectName = Field(description="Name of the PersistentVolumeClaim.")
    path: str = Field(
        default="",
        max_length=MAX_KEY,
        pattern=RELATIVE_PATH_PATTERN,
        description="Folder inside the volume, relative to its root and without '..' (`exports/daily`); "
        "empty means the volume's root.",
    )


# --------------------------------------------------------------------------------------------------
# Status building blocks
# --------------------------------------------------------------------------------------------------

ConditionStatus = Literal["True", "False", "Unknown"]

READY = "Ready"
RECONCILING = "Reconciling"
STALLED = "Stalled"


class Condition(StatusModel):
    """One aspect of the resource's state (the Kubernetes `metav1.Condition` shape)."""

    type: str = Field(
        min_length=1,
        max_length=316,
        pattern=CONDITION_TYPE_PATTERN,
        description="Type of the condition: `Ready`, `Reconciling` or `Stalled` (the kstatus convention).",
    )
    status: ConditionStatus = Field(description="Whether the condition holds: `True`, `False` or `Unknown`.")
    reason: str = Field(
        min_length=1,
        max_length=1024,
        pattern=CONDITION_REASON_PATTERN,
        description="Machine-readable reason for the last transition, in PascalCase.",
    )
    message: Message = Field(default="", description="Human-readable details about the last transition.")
    last_transition_time: datetime = Field(description="When the status of the condition last changed.")
    observed_generation: int | None = Field(
        default=None, ge=0, description="The `metadata.generation` the condition was computed from."
    )


def _condition_list_field(description: str) -> Any:
    return Field(
        default_factory=list,
        max_length=16,
        description=description,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )


class Status(StatusModel):
    """What the operator last observed. Every kind's status extends this."""

    phase: str | None = Field(default=None, max_length=32, description="Summary of the resource's state.")
    conditions: list[Condition] = _condition_list_field(
        "Current conditions: `Ready` (the resource has done what its spec asks), `Reconciling` (the operator "
        "is working towards the spec) and `Stalled` (it cannot proceed without a change to the spec or "
        "its dependencies)."
    )
    observed_generation: int | None = Field(
        default=None, ge=0, description="The `metadata.generation` of the spec this status describes."
    )
    message: Message | None = Field(default=None, description="Human-readable summary of the current state.")
    reason: str | None = Field(
        default=None, max_length=128, description="Machine-readable reason for the phase, in PascalCase."
    )

    def condition(self, type_: str) -> Condition | None:
        """The condition of that type, if any."""
        return next((c for c in self.conditions if c.type == type_), None)

    def set_condition(
        self,
        type_: str,
        status: ConditionStatus,
        reason: str,
        message: str = "",
        *,
        now: datetime,
        observed_generation: int | None = None,
    ) -> Condition:
        """Add or update a condition; ``lastTransitionTime`` moves only when ``status`` changes."""
        current = self.condition(type_)
        transition = now if current is None or current.status != status else current.last_transition_time
        updated = Condition(
            type=type_,
            status=status,
            reason=reason,
            message=message,
            last_transition_time=transition,
            observed_generation=observed_generation,
        )
        self.conditions = [updated if c.type == type_ else c for c in self.conditions]
        if current is None:
            self.conditions.append(updated)
        return updated


# --------------------------------------------------------------------------------------------------
# Whole objects and registry entries
# --------------------------------------------------------------------------------------------------


class ObjectMeta(StatusModel):
    """The parts of `metadata` Headwater reads; everything else is kept as is."""

    model_config = ConfigDict(extra="allow")

    name: str | None = Field(default=None, description="Name of the object.")
    namespace: str | None = Field(default=None, description="Namespace of the object.")
    uid: str | None = Field(default=None, description="Unique id assigned by the API server.")
    generation: int | None = Field(default=None, description="Generation of the spec.")
    labels: dict[str, str] = Field(default_factory=dict, description="Labels.")
    annotations: dict[str, str] = Field(default_factory=dict, description="Annotations.")


PrinterColumnType = Literal["integer", "number", "string", "boolean", "date"]


@dataclass(frozen=True)
class PrinterColumn:
    """One column of `kubectl get`."""

    name: str
    json_path: str
    type: PrinterColumnType = "string"
    description: str = ""
    priority: int = 0
    format: str | None = None

    def to_crd(self) -> dict[str, Any]:
        column: dict[str, Any] = {"name": self.name, "type": self.type, "jsonPath": self.json_path}
        if self.format:
            column["format"] = self.format
        if self.description:
            column["description"] = self.description
        if self.priority:
            column["priority"] = self.priority
        return column


def phase_column() -> PrinterColumn:
    return PrinterColumn("Phase", ".status.phase", description="Summary of the resource's state.")


def ready_column() -> PrinterColumn:
    return PrinterColumn(
        "Ready", '.status.conditions[?(@.type=="Ready")].status', description="Status of the Ready condition."
    )


def age_column() -> PrinterColumn:
    return PrinterColumn(
        "Age", ".metadata.creationTimestamp", type="date", description="Time since creation."
    )


def message_column() -> PrinterColumn:
    return PrinterColumn(
        "Message", ".status.message", description="Summary of the current state.", priority=1
    )


@dataclass(frozen=True)
class KindInfo:
    """Everything needed to register a kind with the API server and to talk to it."""

    kind: str
    plural: str
    singular: str
    short_names: tuple[str, ...]
    spec_model: type[ApiModel]
    status_model: type[Status]
    resource_model: type[ApiModel]
    printer_columns: tuple[PrinterColumn, ...]
    description: str
    categories: tuple[str, ...] = field(default=(CATEGORY,))

    @property
    def group(self) -> str:
        return GROUP

    @property
    def version(self) -> str:
        return VERSION

    @property
    def api_version(self) -> str:
        return API_VERSION

    @property
    def crd_name(self) -> str:
        return f"{self.plural}.{GROUP}"

    @property
    def list_kind(self) -> str:
        return f"{self.kind}List"
