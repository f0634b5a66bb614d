"""The generated CRDs: committed copies are current, schemas are structural, documented and bounded."""

from __future__ import annotations

import shutil
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, get_args

import pytest
import yaml
from headwater_operator.api import GROUP, KINDS, VERSION, KindInfo, crdgen
from headwater_operator.api.common import ApiModel, nested_models
from pydantic import BaseModel, TypeAdapter
from pydantic.fields import FieldInfo

REPO = Path(__file__).resolve().parents[2]
CRDS = REPO / "crds"

# Short names of the built-in resources (`kubectl api-resources`); ours must not shadow any of them.
BUILT_IN_SHORT_NAMES = {
    "cm", "cs", "csr", "crd", "crds", "cj", "deploy", "ds", "ep", "ev", "hpa", "ing", "ingclass", "limits",
    "netpol", "no", "ns", "pc", "pdb", "po", "psp", "pv", "pvc", "quota", "rc", "rs", "sa", "sc", "sts",
    "svc", "ipaddr", "ippool", "vac",
}  # fmt: skip

KIND_IDS = [info.kind for info in KINDS]


def schema_of(info: KindInfo) -> dict[str, Any]:
    schema: dict[str, Any] = crdgen.crd(info)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


def walk(node: Mapping[str, Any], path: str = "") -> Iterator[tuple[str, Mapping[str, Any]]]:
    """Every schema node with its path (`.spec.tasks[].name`)."""
    yield path, node
    for name, sub in (node.get("properties") or {}).items():
        yield from walk(sub, f"{path}.{name}")
    if isinstance(node.get("items"), Mapping):
        yield from walk(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), Mapping):
        yield from walk(node["additionalProperties"], f"{path}{{}}")


# --------------------------------------------------------------------------------------------------
# Generated files
# --------------------------------------------------------------------------------------------------


def test_committed_crds_are_generated_from_the_models() -> None:
    problems = crdgen.check(CRDS, crdgen.generate())
    assert not problems, "crds/ is out of date, run `make crds`:\n" + "".join(problems)


def test_one_file_per_kind() -> None:
    assert sorted(p.name for p in CRDS.glob("*.yaml")) == sorted(f"{i.plural}.{GROUP}.yaml" for i in KINDS)


@pytest.mark.parametrize("info", KINDS, ids=KIND_IDS)
def test_yaml_reads_back_to_the_same_crd(info: KindInfo) -> None:
    assert yaml.safe_load(crdgen.render(info)) == crdgen.crd(info)


def test_check_reports_drift_and_write_repairs_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "crds"
    shutil.copytree(CRDS, out)
    edited = out / f"exportjobs.{GROUP}.yaml"
    edited.write_text(edited.read_text().replace("gzip compression level", "compression level"))
    (out / f"stale.{GROUP}.yaml").write_text("kind: CustomResourceDefinition\n")
    assert crdgen.main(["--check", "--out", str(out)]) == 1
    report = capsys.readouterr().out
    assert "-                description: compression level" in report
    assert "+                description: gzip compression level" in report
    assert "stale.headwater.dev.yaml: not generated" in report
    assert crdgen.main(["--out", str(out)]) == 0
    assert not (out / f"stale.{GROUP}.yaml").exists()
    assert crdgen.main(["--check", "--out", str(out)]) == 0


# --------------------------------------------------------------------------------------------------
# The CRDs themselves
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("info", KINDS, ids=KIND_IDS)
def test_names(info: KindInfo) -> None:
    crd = crdgen.crd(info)
    names = crd["spec"]["names"]
    assert crd["metadata"]["name"] == f"{info.plural}.{GROUP}"
    assert names["plural"] == info.kind.lower() + "s"
    assert names["singular"] == info.kind.lower()
    assert names["categories"] == ["headwater"]
    assert names["listKind"] == f"{info.kind}List"
    assert not set(names["shortNames"]) & BUILT_IN_SHORT_NAMES
    version = crd["spec"]["versions"][0]
    assert version["name"] == VERSION
    assert version["served"]
    assert version["storage"]
    assert version["subresources"] == {"status": {}}


def test_short_names_are_unique() -> None:
    short = [name for info in KINDS for name in info.short_names]
    assert len(short) == len(set(short))


@pytest.mark.parametrize("info", KINDS, ids=KIND_IDS)
def test_printer_columns_point_at_schema_fields(info: KindInfo) -> None:
    columns = crdgen.crd(info)["spec"]["versions"][0]["additionalPrinterColumns"]
    names = [c["name"] for c in columns]
    assert {"Phase", "Ready", "Age"} <= set(names)
    ready = next(c for c in columns if c["name"] == "Ready")
    assert ready["jsonPath"] == '.status.conditions[?(@.type=="Ready")].status'
    paths = {path for path, _ in walk(schema_of(info))}
    types = {"string": "string", "integer": "integer", "number": "number", "boolean": "boolean"}
    for column in columns:
        json_path = column["jsonPath"]
        if json_path.startswith(".metadata.") or "[?(" in json_path:
            continue
        assert json_path in paths, f"{column['name']}: {json_path} is not in the schema"
        node = dict(walk(schema_of(info)))[json_path]
        expected = "date" if node.get("format") == "date-time" else types[node["type"]]
        assert column["type"] == expected, f"{column['name']}: column type {column['type']}, field {expected}"


# --------------------------------------------------------------------------------------------------
# Structural schemas
# --------------------------------------------------------------------------------------------------

FORBIDDEN = {
    "$ref",
    "$defs",
    "definitions",
    "anyOf",
    "oneOf",
    "allOf",
    "not",
    "uniqueItems",
    "title",
    "const",
}


@pytest.mark.parametrize("info", KINDS, ids=KIND_IDS)
def test_schema_is_structural(info: KindInfo) -> None:
    for path, node in walk(schema_of(info)):
        assert not FORBIDDEN & set(node), f"{path}: {sorted(FORBIDDEN & set(node))}"
        assert (
            "type" in node
            or node.get("x-kubernetes-preserve-unknown-fields")
            or node.get("x-kubernetes-int-or-string")
        ), f"{path}: no type"
        if "properties" in node:
            assert node["type"] == "object", path
            assert "additionalProperties" not in node, f"{path}: properties with additionalProperties"
        if node.get("type") == "array":
            assert "items" in node, f"{path}: array without items"
        for required in node.get("required", []):
            assert required in node.get("properties", {}), f"{path}: required {required} is not a property"
        if "default" in node:
            assert not node.get("nullable"), f"{path}: default on a nullable field"


@pytest.mark.parametrize("info", KINDS, ids=KIND_IDS)
def test_every_field_is_described(info: KindInfo) -> None:
    for path, node in walk(schema_of(info)):
        if path == ".metadata":
            continue  # the API server allows nothing but `type: object` there
        if path.endswith(("[]", "{}")) and node.get("type") != "object":
            continue  # a scalar item is described by its list or map
        assert node.get("description", "").strip(), f"{path}: no description"


@pytest.mark.parametrize("info", KINDS, ids=KIND_IDS)
def test_strings_and_lists_are_bounded(info: KindInfo) -> None:
    """Bounds keep the estimated cost of CEL rules within the API server's budget."""
    for path, node in walk(schema_of(info)):
        if path.startswith((".apiVersion", ".kind", ".metadata")):
            continue
        if node.get("type") == "string" and "enum" not in node and node.get("format") != "date-time":
            assert "maxLength" in node, f"{path}: string without maxLength"
        if node.get("type") == "array":
            assert "maxItems" in node, f"{path}: array without maxItems"
        if node.get("type") == "object" and isinstance(node.get("additionalProperties"), Mapping):
            assert "maxProperties" in node, f"{path}: map without maxProperties"


@pytest.mark.parametrize("info", KINDS, ids=KIND_IDS)
def test_list_types(info: KindInfo) -> None:
    for path, node in walk(schema_of(info)):
        list_type = node.get("x-kubernetes-list-type")
        if list_type == "map":
            keys = node["x-kubernetes-list-map-keys"]
            item = node["items"]
            assert set(keys) <= set(item.get("required", [])), f"{path}: map keys must be required"
        elif list_type == "set":
            assert node["items"]["type"] in {"string", "integer", "number", "boolean"}, path


def test_keyed_lists() -> None:
    nodes = dict(walk(schema_of(next(i for i in KINDS if i.kind == "ExportJob"))))
    assert nodes[".spec.tasks"]["x-kubernetes-list-type"] == "map"
    assert nodes[".spec.tasks"]["x-kubernetes-list-map-keys"] == ["name"]
    assert nodes[".spec.only"]["x-kubernetes-list-type"] == "set"
    assert nodes[".status.tasks"]["x-kubernetes-list-map-keys"] == ["name"]
    assert nodes[".status.conditions"]["x-kubernetes-list-map-keys"] == ["type"]


@pytest.mark.parametrize("info", KINDS, ids=KIND_IDS)
def test_cel_rules_name_existing_fields(info: KindInfo) -> None:
    for path, node in walk(schema_of(info)):
        for rule in node.get("x-kubernetes-validations", []):
            assert rule["rule"].strip()
            assert rule["message"].strip()
            field_path = rule.get("fieldPath")
            if field_path is not None:
                assert field_path.lstrip(".") in node["properties"], f"{path}: fieldPath {field_path}"


def _field_models(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [model for arg in get_args(annotation) for model in _field_models(arg)]


def _check_required(model: type[BaseModel], node: Mapping[str, Any], path: str) -> None:
    fields = model.model_fields
    expected = {info.alias or name for name, info in fields.items() if info.is_required()}
    assert set(node.get("required", [])) == expected, f"{path}: required"
    assert set(node["properties"]) == {info.alias or name for name, info in fields.items()}, f"{path}: fields"
    for name, info in fields.items():
        sub = node["properties"][info.alias or name]
        _check_default(info, sub, f"{path}.{info.alias or name}")
        if sub.get("type") == "array":
            sub = sub["items"]
        elif isinstance(sub.get("additionalProperties"), Mapping):
            sub = sub["additionalProperties"]
        for nested in _field_models(info.annotation):
            _check_required(nested, sub, f"{path}.{info.alias or name}")


def _check_default(info: FieldInfo, node: Mapping[str, Any], path: str) -> None:
    """The API server applies the same defaults as the models (absent, None and empty stay unset)."""
    if info.is_required():
        return
    default = info.get_default(call_default_factory=True)
    wire = TypeAdapter(Any).dump_python(
        default.to_wire() if isinstance(default, ApiModel) else default, mode="json", by_alias=True
    )
    if wire is None or wire == [] or wire == {}:
        assert "default" not in node, f"{path}: the schema has a default the model does not"
    else:
        assert node.get("default") == wire, f"{path}: schema default {node.get('default')!r}, model {wire!r}"


@pytest.mark.parametrize("info", KINDS, ids=KIND_IDS)
def test_required_fields_match_the_models(info: KindInfo) -> None:
    schema = schema_of(info)
    assert schema["required"] == ["spec"]
    _check_required(info.spec_model, schema["properties"]["spec"], ".spec")
    _check_required(info.status_model, schema["properties"]["status"], ".status")


@pytest.mark.parametrize("info", KINDS, ids=KIND_IDS)
def test_every_cel_rule_of_the_models_is_in_the_crd(info: KindInfo) -> None:
    in_crd = [
        rule["rule"] for _, node in walk(schema_of(info)) for rule in node.get("x-kubernetes-validations", [])
    ]
    for model in nested_models(info.spec_model):
        for rule in getattr(model, "cel_rules", ()):
            assert rule.rule in in_crd, f"{model.__name__}: {rule.rule}"


def test_structural_refuses_what_the_api_server_would() -> None:
    with pytest.raises(crdgen.SchemaError, match="anyOf of several types"):
        crdgen.structural(
            {"type": "object", "properties": {"x": {"anyOf": [{"type": "string"}, {"type": "integer"}]}}}
        )
    with pytest.raises(crdgen.SchemaError, match="uniqueItems"):
        crdgen.structural({"type": "array", "items": {"type": "string"}, "uniqueItems": True})
    with pytest.raises(crdgen.SchemaError, match="no type"):
        crdgen.structural({"type": "object", "properties": {"x": {"description": "anything"}}})
    with pytest.raises(crdgen.SchemaError, match="unresolvable"):
        crdgen.structural({"$ref": "#/$defs/Missing"})


def test_optional_fields_are_plain_types_without_null_defaults() -> None:
    schema = crdgen.structural(
        {
            "$defs": {"Ref": {"type": "object", "title": "Ref", "properties": {"name": {"type": "string"}}}},
            "type": "object",
            "properties": {
                "ref": {
                    "anyOf": [{"$ref": "#/$defs/Ref"}, {"type": "null"}],
                    "default": None,
                    "description": "r",
                },
                "mode": {"const": "x", "type": "string", "description": "m"},
            },
        }
    )
    assert schema["properties"]["ref"] == {
        "description": "r",
        "properties": {"name": {"type": "string"}},
        "type": "object",
    }
    assert schema["properties"]["mode"]["enum"] == ["x"]
