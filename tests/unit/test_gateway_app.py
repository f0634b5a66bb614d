"""The gateway's HTTP surface that needs no API server: probes, OpenAPI, problem details, the 501 routes,
the 401 of a request without a token, validation errors naming the field, and the impersonation headers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient
from headwater_gateway.app import create_app
from headwater_gateway.identity import Identity, NotImpersonableError, impersonation_headers
from headwater_gateway.settings import GatewaySettings
from headwater_localcluster.control_plane import free_port
from pydantic import ValidationError

PROBLEM = "application/problem+json"


def nowhere_kubeconfig(path: Path) -> Path:
    """A kubeconfig for an API server that is not there: nothing here may need one."""
    server = f"http://127.0.0.1:{free_port()}"
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": server}}],
                "users": [{"name": "u", "user": {"token": "gateway-token"}}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "x",
            }
        )
    )
    return path


def client_for(tmp_path: Path, **settings: Any) -> Iterator[TestClient]:
    app = create_app(GatewaySettings(kubeconfig=nowhere_kubeconfig(tmp_path / "kubeconfig"), **settings))
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    yield from client_for(tmp_path, default_service="image-rotate")


@pytest.fixture
def unauthenticated(tmp_path: Path) -> Iterator[TestClient]:
    yield from client_for(tmp_path, unauthenticated=True, service_account="core:engine")


def assert_problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    problem: dict[str, Any] = response.json()
    assert problem["status"] == status
    assert problem["title"]
    assert problem["type"]
    assert problem["detail"]
    return problem


def test_liveness_metrics_and_openapi(client: TestClient) -> None:
    assert client.get("/livez").json() == {"status": "alive"}
    schema = client.get("/openapi.json").json()
    assert "/compute" in schema["paths"]
    assert "/services/{slug}/tasks/{task_id}/status" in schema["paths"]
    assert "/namespaces/{namespace}/services/{slug}/compute" in schema["paths"]
    assert "HTTPBearer" in schema["components"]["securitySchemes"]
    responses = schema["paths"]["/services/{slug}/compute"]["post"]["responses"]
    for status in ("401", "403", "409", "422"):
        assert responses[status]["content"] == {PROBLEM: {"schema": {"$ref": "#/components/schemas/Problem"}}}
    assert {"Problem", "FieldError"} <= set(schema["components"]["schemas"])
    assert client.get("/docs").status_code == 200
    metrics = client.get("/metrics").text
    assert 'headwater_gateway_requests_total{method="GET",route="/livez",status="200"}' in metrics


def test_not_ready_while_the_api_server_does_not_answer(client: TestClient) -> None:
    problem = assert_problem(client.get("/readyz"), 503)
    assert "API server" in problem["detail"]


def test_the_status_of_a_service_needs_no_token(client: TestClient) -> None:
    for path in (
        "/status",
        "/services/csv-profile/status",
        "/namespaces/team-a/services/image-resize/status",
    ):
        response = client.get(path)
        assert response.status_code == 200, path
        assert response.json() == {"status": "Service is available"}


def test_an_unknown_service_is_a_404_naming_the_served_ones(client: TestClient) -> None:
    problem = assert_problem(client.get("/services/teleport/status"), 404)
    assert "'teleport'" in problem["detail"]
    assert "image-rotate" in problem["detail"]


def test_without_a_default_service_the_root_routes_say_where_to_go(tmp_path: Path) -> None:
    for client in client_for(tmp_path):
        problem = assert_problem(client.get("/status"), 404)
        assert "/services/{slug}/" in problem["detail"]


def test_a_request_without_a_token_is_401_with_a_challenge(client: TestClient) -> None:
    task_id = "6f1c1a52-3a0c-4d38-9a51-0d7a2e6f4b10"
    for response in (
        client.post("/compute", json={}),
        client.get(f"/tasks/{task_id}/status"),
        client.post("/services/csv-profile/compute", json={}),
    ):
        problem = assert_problem(response, 401)
        assert "Bearer" in problem["detail"]
        assert response.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize(
    ("path", "named"),
    [
        ("/resources", "seed 000"),
        ("/resources/wrappers/generate", "seed 000"),
        ("/health/", "seed 000"),
        ("/v1/jobs/abc", "seed 003"),
        ("/exports", "seed 004"),
        ("/exports/daily", "seed 004"),
    ],
)
def test_routes_of_other_seeds_answer_501_naming_what_is_missing(
    client: TestClient, path: str, named: str
) -> None:
    problem = assert_problem(client.post(path), 501)
    assert named in problem["detail"]
    assert path in problem["detail"]
    assert problem["type"].endswith("/not-implemented")


def test_task_updates_of_url_mode_tasks_are_not_implemented_yet(client: TestClient) -> None:
    problem = assert_problem(client.patch("/tasks/6f1c1a52-3a0c-4d38-9a51-0d7a2e6f4b10", json={}), 501)
    assert "url" in problem["detail"]


def test_an_unknown_path_is_a_problem_too(client: TestClient) -> None:
    assert_problem(client.get("/nothing/here"), 404)
    assert_problem(client.delete("/livez"), 405)


def test_validation_errors_name_the_field(unauthenticated: TestClient) -> None:
    body = {
        "s3_access_key_id": "a",
        "s3_secret_access_key": "b",
        "s3_region": "r",
        "s3_host": "",
        "s3_bucket": "x",
    }
    problem = assert_problem(unauthenticated.post("/services/image-rotate/compute", json=body), 422)
    fields = {error["field"] for error in problem["errors"]}
    assert fields == {"task", "callback_url"}
    assert all(error["location"] == "body" for error in problem["errors"])
    problem = assert_problem(unauthenticated.get("/services/image-rotate/tasks/not-a-uuid/status"), 422)
    assert [(e["field"], e["location"]) for e in problem["errors"]] == [("task_id", "path")]
    problem = assert_problem(unauthenticated.get("/namespaces/Bad_NS/services/image-rotate/status"), 422)
    assert problem["errors"][0]["field"] == "namespace"


def test_unauthenticated_mode_needs_the_service_account_to_act_as() -> None:
    with pytest.raises(ValidationError, match="HEADWATER_GATEWAY_SERVICE_ACCOUNT"):
        GatewaySettings(unauthenticated=True)
    with pytest.raises(ValidationError, match="service_account"):
        GatewaySettings(unauthenticated=True, service_account="system:serviceaccount:a:b")


def test_settings_read_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEADWATER_GATEWAY_NAMESPACE", "team-a")
    monkeypatch.setenv("HEADWATER_GATEWAY_IMPERSONATED_EXTRAS", "scopes, example.com/team")
    monkeypatch.setenv("HEADWATER_GATEWAY_DEFAULT_SERVICE", "")
    settings = GatewaySettings()
    assert settings.namespace == "team-a"
    assert settings.impersonated_extras == ("scopes", "example.com/team")
    assert settings.default_service is None


def test_a_default_service_that_is_not_built_in_stops_the_gateway(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="'teleport', which is not a built-in service"):
        create_app(GatewaySettings(kubeconfig=nowhere_kubeconfig(tmp_path / "k"), default_service="teleport"))


# -- impersonation headers ----------------------------------------------------------------------------

POD_NAME = "authentication.kubernetes.io/pod-name"


def test_impersonation_headers_carry_user_groups_and_encoded_extras() -> None:
    identity = Identity(
        "system:serviceaccount:a:core",
        groups=("system:serviceaccounts", "system:authenticated"),
        extra={POD_NAME: ("core-0",), "scopes": ("x", "y")},
    )
    assert impersonation_headers(identity, (POD_NAME, "scopes")) == [
        ("Impersonate-User", "system:serviceaccount:a:core"),
        ("Impersonate-Group", "system:serviceaccounts"),
        ("Impersonate-Group", "system:authenticated"),
        ("Impersonate-Extra-authentication.kubernetes.io%2Fpod-name", "core-0"),
        ("Impersonate-Extra-scopes", "x"),
        ("Impersonate-Extra-scopes", "y"),
    ]


def test_a_user_with_an_extra_the_gateway_does_not_forward_is_refused_not_trimmed() -> None:
    identity = Identity("alice", extra={"scopes": ("read-only",)})
    with pytest.raises(NotImpersonableError, match="scopes"):
        impersonation_headers(identity, (POD_NAME,))


def test_identity_from_a_token_review() -> None:
    identity = Identity.from_token_review(
        {"username": "alice", "uid": "1", "groups": ["dev"], "extra": {"Scopes": ["a"]}}
    )
    assert identity == Identity("alice", ("dev",), {"scopes": ("a",)})


def test_the_console_script_refuses_bad_settings_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from headwater_gateway.__main__ import main

    monkeypatch.setenv("HEADWATER_GATEWAY_PORT", "0")
    assert main([]) == 2
    assert "HEADWATER_GATEWAY_PORT: Input should be greater than or equal to 1" in capsys.readouterr().err
    assert main(["--port=1"]) == 2
    assert "takes no arguments" in capsys.readouterr().err
