import asyncio
from typing import Any, cast

import kopf
from headwater_operator.handlers.children import _by_owner


def index(namespace: str | None, raw: dict[str, Any]) -> dict[Any, Any]:
    return asyncio.run(_by_owner(namespace=namespace, body=kopf.Body(cast(kopf.RawBody, raw))))


def test_a_child_is_indexed_under_each_headwater_owner_label_it_carries() -> None:
    job = {
        "kind": "Job",
        "metadata": {
            "name": "nightly-1",
            "labels": {
                "app.kubernetes.io/managed-by": "headwater-operator",
                "headwater.dev/exportjob": "nightly",
                "headwater.dev/connector": "feed",
            },
        },
        "status": {"active": 1},
    }
    indexed = index("data", job)
    assert set(indexed) == {
        ("data", "headwater.dev/exportjob", "nightly"),
        ("data", "headwater.dev/connector", "feed"),
    }
    assert all(value == job for value in indexed.values())


def test_a_child_without_a_namespace_or_owner_label_is_not_indexed() -> None:
    assert index(None, {"metadata": {"name": "x", "labels": {"headwater.dev/exportjob": "y"}}}) == {}
    assert index("data", {"metadata": {"name": "x", "labels": {"app": "y"}}}) == {}
    assert index("data", {"metadata": {"name": "x"}}) == {}
