from headwater_operator.conditions import Outcome, build_conditions, status_patch, transitioned

T0, T1 = "2026-01-01T00:00:00Z", "2026-01-01T00:05:00Z"


def by_type(conditions: list[dict[str, object]]) -> dict[object, dict[str, object]]:
    return {c["type"]: c for c in conditions}


def test_exactly_one_condition_is_true_for_each_state() -> None:
    for outcome in (
        Outcome.ready("Succeeded", "Exported"),
        Outcome.reconciling("Running", "Exporting"),
        Outcome.stalled("Failed", "InvalidQuery", "syntax error"),
    ):
        found = by_type(build_conditions([], outcome, 3, T0))
        true = [kind for kind, c in found.items() if c["status"] == "True"]
        expected = {"ready": "Ready", "reconciling": "Reconciling", "stalled": "Stalled"}[outcome.state]
        assert true == [expected]
        assert all(c["observedGeneration"] == 3 for c in found.values())


def test_ready_carries_the_reason_even_when_false() -> None:
    found = by_type(build_conditions([], Outcome.stalled("Failed", "InvalidQuery", "bad"), 1, T0))
    assert found["Ready"]["reason"] == "InvalidQuery"
    assert found["Stalled"]["message"] == "bad"


def test_transition_time_kept_while_status_unchanged() -> None:
    first = build_conditions([], Outcome.reconciling("Running", "Exporting"), 1, T0)
    second = by_type(build_conditions(first, Outcome.reconciling("Running", "Retrying"), 1, T1))
    assert second["Reconciling"]["lastTransitionTime"] == T0
    third = by_type(build_conditions(list(second.values()), Outcome.ready("Succeeded", "Exported"), 1, T1))
    assert third["Ready"]["lastTransitionTime"] == T1
    assert third["Reconciling"]["lastTransitionTime"] == T1


def test_status_patch_and_transition() -> None:
    outcome = Outcome.ready("Succeeded", "Exported", "done")
    patch = status_patch({}, outcome, 2, {"jobName": "x"}, now=T0)
    assert patch["phase"] == "Succeeded"
    assert patch["observedGeneration"] == 2
    assert patch["jobName"] == "x"
    assert transitioned({}, outcome)
    assert not transitioned(patch, outcome)
    assert transitioned(patch, Outcome.ready("Succeeded", "Other"))
