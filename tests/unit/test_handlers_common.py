import threading

import pytest
from headwater_operator.handlers.common import refresh_lock, worth_a_refresh


@pytest.mark.parametrize(
    ("status", "worth"),
    [
        (None, False),
        ({}, False),
        ({"phase": "Pending", "qosClass": "Burstable"}, False),
        ({"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "True"}]}, True),
        ({"active": 1, "startTime": "2026-01-01T00:00:00Z"}, True),
        ({"lastScheduleTime": "2026-01-01T00:00:00Z"}, True),
    ],
)
def test_a_child_without_status_is_not_news(status: dict[str, object] | None, worth: bool) -> None:
    body = {"metadata": {"name": "x"}} | ({"status": status} if status is not None else {})
    assert worth_a_refresh(body) is worth


@pytest.mark.parametrize("kind", ["CronJob", "Deployment"])
def test_a_new_workload_is_news_even_without_status(kind: str) -> None:
    assert worth_a_refresh({"kind": kind, "metadata": {"name": "x"}, "status": {}})


def test_one_resource_always_gets_the_same_lock() -> None:
    lock = refresh_lock("exportjobs", "ns", "a")
    assert lock is refresh_lock("exportjobs", "ns", "a")
    assert isinstance(lock, type(threading.Lock()))
    assert len({id(refresh_lock("exportjobs", "ns", f"n{i}")) for i in range(500)}) > 1
