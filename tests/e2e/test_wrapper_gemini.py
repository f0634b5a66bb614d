"""`generator.type: gemini` end to end: kubectl apply → operator (its `HEADWATER_GEMINI_BASE_URL` the
session's fake Gemini) → generator Job whose pod calls Gemini through the SDK with the key of the Wrapper's
Secret → code and prompts ConfigMaps → collector Job → PostgreSQL.

Issue 13's acceptance on the real control plane: a first module that fails lint and a second that passes
(`test_gemini_*`), a refused key that stalls the Wrapper (`test_a_refused_*`), and a quota exhausted beyond
the pod's retries that the generator Job tries again later (`test_an_exhausted_*`).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from headwater_worker.wrapper.prompt import PROMPT_VERSION
from headwater_worker.wrapper.sampling import sample_file
from headwater_worker.wrapper.template import TemplateRequest, generate

from tests.e2e.test_wrapper import CORPUS, DATA, Setup, csv_config_map, expected, parse, setup
from tests.fakes import gemini as answers
from tests.fakes.gemini import FakeGemini
from tests.fixtures.gemini import GEMINI_API_KEY

pytestmark = [pytest.mark.cluster, pytest.mark.postgres]
# `setup` is the fixture of the template generator's end-to-end tests, imported to be found here too.
__all__ = ["setup"]

ENTRY = "utility-monthly"
MODEL = "gemini-2.5-flash"


def gemini_wrapper(setup: Setup, name: str, **generator: Any) -> None:
    """A Wrapper of the corpus CSV `ENTRY` in a ConfigMap, written by Gemini with the key of `gemini-key`."""
    file = CORPUS[ENTRY]["file"]
    wrapper = setup.wrapper(
        name, ENTRY, {"type": "CSV", "file": {"configMapRef": {"name": "meter-csv", "key": file}}}
    )
    wrapper["spec"]["generator"] = {
        "type": "gemini",
        "model": MODEL,
        "apiKeySecretRef": {"name": "gemini-key"},
        "maxAttempts": 2,
        **generator,
    }
    setup.kubectl.apply([csv_config_map("meter-csv", ENTRY), wrapper])


def gemini_key(setup: Setup, value: str = GEMINI_API_KEY) -> None:
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "gemini-key"},
        "stringData": {"apiKey": value},
    }
    setup.kubectl.apply(secret)


def good_module() -> str:
    """The module that fits the source, as the sample in the generator's pod shows it."""
    file = CORPUS[ENTRY]["file"]
    indicator = CORPUS[ENTRY]["indicator"]
    request = TemplateRequest(
        indicator["name"], indicator.get("description"), indicator.get("unit"), notes=indicator.get("notes")
    )
    return generate(request, sample_file((DATA / file).read_bytes(), "CSV", file))


def assert_collected(setup: Setup, name: str) -> dict[str, Any]:
    status = setup.wait_phase(name, "Completed", "Error", "Stalled", timeout=240)
    assert status["phase"] == "Completed", setup.describe(name)
    want = expected(ENTRY)
    assert setup.points(status["resourceId"]) == want
    assert parse(status["highWaterMark"]) == max(point[0] for point in want)
    assert status["pointsCollected"] == len(want)
    return status


def test_gemini_writes_the_collector_after_a_lint_error_and_it_collects_exactly(
    setup: Setup, gemini: FakeGemini
) -> None:
    good = good_module()
    lint_failing = good.replace(
        "from headwater_worker.wrapper import helpers",
        "import re\nfrom headwater_worker.wrapper import helpers",
    )
    gemini.script(answers.code(lint_failing), answers.code(good, after="It skips the total row."))
    gemini_key(setup)
    gemini_wrapper(setup, "meter")

    status = assert_collected(setup, "meter")

    code = status["code"]
    assert (code["generator"], code["model"], code["promptVersion"]) == ("gemini", MODEL, PROMPT_VERSION)
    assert code["tokens"] == {"requests": 2, "promptTokens": 2400, "outputTokens": 600, "totalTokens": 3000}
    assert code["promptsConfigMapName"] == "meter-prompts"
    assert status["attempts"] == 2
    events = [entry["event"] for entry in status["executionLog"]]
    assert events[:4] == ["prompted", "validation_failed", "prompted", "generated"]
    stored = setup.kubectl.get_json("configmap", "meter-code")
    assert stored["data"]["wrapper.py"] == good

    first, second = gemini.generate_requests
    for request in (first, second):
        assert request.model == MODEL
        assert request.api_key == GEMINI_API_KEY
        assert '"Reading date", "Meter", "Consumption (kWh)"' in request.user_text, "the sample"
    assert "ruff F401: `re` imported but unused" in second.user_text, "the first module's error"

    prompts = setup.kubectl.get_json("configmap", "meter-prompts")["data"]
    assert "004-attempt-2-request.md" in prompts
    assert "ruff F401" in prompts["004-attempt-2-request.md"]
    assert PROMPT_VERSION in prompts["000-index.md"]
    assert GEMINI_API_KEY not in json.dumps(prompts)
    assert GEMINI_API_KEY not in json.dumps(status)


def test_a_refused_gemini_key_stalls_the_wrapper_without_a_retry_storm(
    setup: Setup, gemini: FakeGemini
) -> None:
    gemini_key(setup, "a-revoked-key")
    gemini_wrapper(setup, "revoked")

    status = setup.wait_phase("revoked", "Stalled", "Error", "Completed", timeout=240)

    assert status["phase"] == "Stalled", setup.describe("revoked")
    assert status["reason"] == "GeminiKeyRejected"
    assert "API key not valid" in status["message"]
    assert "a-revoked-key" not in json.dumps(status)
    assert len(gemini.generate_requests) == 1, "one request, no retry"
    [job] = setup.kubectl.get_json("jobs")["items"]
    assert job["status"].get("failed") == 1, "the Job failed at once, no second pod"


def test_an_exhausted_quota_is_retried_later_by_the_generator_job_then_collects(
    setup: Setup, gemini: FakeGemini
) -> None:
    exhausted = [answers.quota_exhausted(retry_after="0") for _ in range(5)]
    gemini.script(*exhausted, answers.code(good_module()))
    gemini_key(setup)
    gemini_wrapper(setup, "quota")

    status = assert_collected(setup, "quota")

    retrying = [entry for entry in status["executionLog"] if entry["event"] == "retrying"]
    assert retrying, setup.describe("quota")
    assert retrying[0]["message"].startswith("GeminiQuotaExhausted: Gemini did not answer after 5 requests")
    assert status["code"]["generator"] == "gemini"
    assert gemini.left == 0
    [job] = setup.kubectl.get_json("jobs", "-l", "app.kubernetes.io/component=generate")["items"]
    assert job["status"]["failed"] == 1, "the second pod of the generator Job wrote the code"
