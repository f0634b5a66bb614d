"""The pure parts of the Gemini generator: the module in an answer, what an API error means, the prompt,
and the transcript kept within its bound."""

from __future__ import annotations

from datetime import datetime

import pytest
from headwater_worker.logs import redact
from headwater_worker.wrapper.answer import extract_code, fenced_blocks
from headwater_worker.wrapper.contract import ALLOWED_IMPORTS, FORBIDDEN_NAMES
from headwater_worker.wrapper.gemini import failure_reason, retry_wait
from headwater_worker.wrapper.prompt import (
    PROMPT_VERSION,
    Indicator,
    PreviousAttempt,
    request_text,
    system_instruction,
)
from headwater_worker.wrapper.sample import PageSample, Sample, SheetSample
from headwater_worker.wrapper.transcript import INDEX_KEY, Transcript

from tests.fakes import gemini as answers

MODULE = "def collect(since, source):\n    yield from ()\n"


# -- the module in an answer ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "answer",
    [
        f"```python\n{MODULE}```",
        f"Here is the collector:\n\n```python\n{MODULE}```\n\nIt reads every page.",
        f"~~~py\n{MODULE}~~~",
        f"```\n{MODULE}```",
        f"  ```Python\n{MODULE}  ```",
        MODULE,
        f"Sure! Here it is:\n{MODULE}\nThis yields the points.",
        f"Here is the collector:\n```python\n{MODULE}",  # a block left open at the end of a long answer
    ],
    ids=[
        "fenced",
        "prose-around",
        "tildes",
        "no-language",
        "indented",
        "plain",
        "plain-in-prose",
        "unclosed",
    ],
)
def test_the_module_is_found_however_the_answer_is_written(answer: str) -> None:
    assert extract_code(answer) == MODULE


def test_of_several_blocks_the_last_one_that_defines_collect_wins() -> None:
    draft = "def collect(since, source):\n    return []\n"
    answer = (
        f"A first draft:\n```python\n{draft}```\nOn second thought:\n```python\n{MODULE}```\n"
        "And to run it:\n```bash\npython wrapper.py\n```"
    )
    assert extract_code(answer) == MODULE


def test_blocks_that_define_collect_only_together_are_joined_in_order() -> None:
    answer = (
        "The imports:\n```python\nfrom headwater_worker.wrapper import helpers\n```\n"
        "The function:\n```python\ndef collect(since, source):\n    return helpers.csv_rows(b'')\n```"
    )
    assert extract_code(answer) == (
        "from headwater_worker.wrapper import helpers\n\ndef collect(since, source):\n"
        "    return helpers.csv_rows(b'')\n"
    )


def test_a_block_that_does_not_parse_is_still_the_module_for_validation_to_name_its_error() -> None:
    assert extract_code("```python\ndef collect(since, source:\n    pass\n```") == (
        "def collect(since, source:\n    pass\n"
    )


def test_an_answer_of_prose_alone_holds_no_module() -> None:
    assert extract_code("I cannot write this collector without seeing the data.") is None


def test_fences_of_other_languages_are_not_python() -> None:
    assert fenced_blocks("```json\n{}\n```\n```python\nx = 1\n```") == [
        ("json", "{}\n"),
        ("python", "x = 1\n"),
    ]
    assert extract_code('```json\n{"a": 1}\n```') is None


# -- what an API error means ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "reason", "transient"),
    [
        (answers.quota_exhausted(), "GeminiQuotaExhausted", True),
        (answers.unavailable(), "GeminiUnavailable", True),
        (answers.error(500, "INTERNAL", "An internal error has occurred."), "GeminiUnavailable", True),
        (answers.api_key_invalid(), "GeminiKeyRejected", False),
        (answers.permission_denied(), "GeminiKeyRejected", False),
        (
            answers.error(401, "UNAUTHENTICATED", "Request had invalid credentials."),
            "GeminiKeyRejected",
            False,
        ),
        (answers.error(404, "NOT_FOUND", "models/gemini-9 is not found"), "GeminiRequestRefused", False),
        (answers.error(400, "INVALID_ARGUMENT", "Invalid JSON payload"), "GeminiRequestRefused", False),
    ],
)
def test_each_error_has_its_reason_and_only_429_and_5xx_are_worth_a_retry(
    reply: answers.Reply, reason: str, transient: bool
) -> None:
    body = reply.body
    assert failure_reason(reply.status, body["error"]["status"], body) == (reason, transient)


def test_the_wait_is_the_retry_after_header_else_gemini_s_retry_info() -> None:
    both = answers.quota_exhausted(retry_after="12", retry_delay="30s")
    assert retry_wait({"retry-after": "12"}, both.body) == 12.0
    assert retry_wait({}, answers.quota_exhausted(retry_after=None, retry_delay="1.5s").body) == 1.5
    assert retry_wait({}, answers.quota_exhausted(retry_after=None).body) is None
    assert retry_wait(None, answers.unavailable().body) is None


# -- the prompt -----------------------------------------------------------------------------------------


def test_the_system_instruction_states_the_allow_list_of_the_contract_itself() -> None:
    system = system_instruction()
    for name in ALLOWED_IMPORTS:
        assert f"`{name}`" in system
    for name in FORBIDDEN_NAMES:
        assert f"`{name}`" in system
    assert "def collect(since, source):" in system, "a worked example"
    assert "fetch_url" not in system
    assert "at most 15 calls" in system_instruction(tool_calls=15, tool_chars=2500)


SHEET = SheetSample(
    name="energy.xlsx",
    rows=[["Energy report", None], [None, None], ["month", "gas_mwh"], [datetime(2024, 1, 1), 12.5]],
    merged_cells=["A1:B1"],
    total_rows=30,
    header_row=2,
    title_rows=[0],
    notes_rows=[["Source: utility"]],
    last_rows=[[datetime(2025, 12, 1), 9.0], ["Source: utility", None]],
)


def test_the_request_shows_the_sample_and_the_structure_the_sampler_found() -> None:
    text = request_text(
        Indicator("Gas consumption", unit="MWh", notes="monthly"), Sample("XLSX", sheets=[SHEET])
    )
    assert "- name: Gas consumption\n- unit: MWh" in text
    assert "notes from the Wrapper's author: monthly" in text
    assert "header row found at index 2" in text
    assert "title rows above it at indexes 0" in text
    assert "merged cells: A1:B1" in text
    assert "notes after the data: Source: utility" in text
    assert '3: ["2024-01-01T00:00:00", 12.5]' in text
    assert '28: ["2025-12-01T00:00:00", 9.0]' in text, "the last rows, numbered where they are"
    assert "Your previous answer" not in text


def test_a_retry_carries_the_previous_module_and_every_error_and_an_earlier_run_s_failure() -> None:
    errors = ["line 1: ruff F401: `re` imported but unused", "line 3: placeholder 'TODO'"]
    text = request_text(
        Indicator("Gas consumption"),
        Sample("XLSX", sheets=[SHEET]),
        previous=PreviousAttempt("import re\n" + MODULE, errors),
        earlier_failure="SourceChanged: the header row has no column 'gas_mwh'",
    )
    assert f"```python\nimport re\n{MODULE}```" in text
    for error in errors:
        assert f"- {error}" in text
    assert "failed: SourceChanged: the header row has no column 'gas_mwh'" in text


def test_an_api_sample_shows_each_page_with_its_paging_headers() -> None:
    page = PageSample(
        url="https://api.city.org/v2/aqi/",
        params={},
        status=200,
        content_type="application/json",
        headers={"link": '<https://api.city.org/v2/aqi/?page=2>; rel="next"'},
        body='{"results": [{"date": "2023-03-01", "aqi": "131"}]}',
    )
    text = request_text(Indicator("Air quality index"), Sample("API", url=page.url, pages=[page]))
    assert (
        'GET https://api.city.org/v2/aqi/ → HTTP 200, link: <https://api.city.org/v2/aqi/?page=2>; rel="next"'
        in text
    )
    assert page.body in text


# -- the transcript -----------------------------------------------------------------------------------


def test_the_transcript_is_redacted_and_keyed_in_order_under_an_index() -> None:
    redact.add("transcript-secret-77")
    transcript = Transcript(f"# Generation by gemini-2.5-flash, prompt {PROMPT_VERSION}")
    transcript.add("system", "the contract")
    transcript.add("attempt 1 request", "the key is transcript-secret-77")
    data = transcript.data()
    assert list(data) == [INDEX_KEY, "001-system.md", "002-attempt-1-request.md"]
    assert data["002-attempt-1-request.md"] == "the key is ***"
    assert PROMPT_VERSION in data[INDEX_KEY]
    assert "- 002-attempt-1-request.md" in data[INDEX_KEY]


def test_beyond_its_limit_the_transcript_drops_its_oldest_entries_and_says_so() -> None:
    transcript = Transcript("# Generation", limit_bytes=2500)
    for number in range(1, 6):
        transcript.add(f"attempt {number} request", "x" * 1000)
    data = transcript.data()
    assert [key for key in data if key != INDEX_KEY] == [
        "004-attempt-4-request.md",
        "005-attempt-5-request.md",
    ]
    assert "the 3 oldest left out" in data[INDEX_KEY]
