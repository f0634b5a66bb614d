import json

import pytest
from headwater_operator.kube import ApiError, object_path


def test_a_refusal_is_told_by_the_api_servers_message_in_one_line() -> None:
    body = {
        "kind": "Status",
        "status": "Failure",
        "message": 'serviceaccounts "x-worker" is forbidden: namespace n is being terminated',
        "reason": "Forbidden",
    }
    error = ApiError.of(403, "Forbidden", json.dumps(body).encode())
    assert error.status == 403
    assert (
        str(error)
        == '403 Forbidden: serviceaccounts "x-worker" is forbidden: namespace n is being terminated'
    )


def test_a_refusal_without_a_status_object_keeps_its_text() -> None:
    assert str(ApiError.of(502, "Bad Gateway", b"upstream down\n")) == "502 Bad Gateway: upstream down\n"


@pytest.mark.parametrize(
    ("api_version", "kind", "path"),
    [
        ("v1", "ServiceAccount", "/api/v1/namespaces/ns/serviceaccounts/a"),
        ("batch/v1", "Job", "/apis/batch/v1/namespaces/ns/jobs/a"),
        (
            "rbac.authorization.k8s.io/v1",
            "RoleBinding",
            "/apis/rbac.authorization.k8s.io/v1/namespaces/ns/rolebindings/a",
        ),
    ],
)
def test_children_are_addressed_by_their_kinds_plural(api_version: str, kind: str, path: str) -> None:
    assert object_path(api_version, kind, "ns", "a") == path


def test_a_kind_the_operator_does_not_manage_is_refused() -> None:
    with pytest.raises(ValueError, match="does not manage Secret"):
        object_path("v1", "Secret", "ns", "a")
