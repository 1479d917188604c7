"""The runner's step vocabulary: validation of client steps and the plan built from task fields."""

import pytest

from tasks.runner import (
    ACTION_FIELDS,
    ACTIONS,
    MAX_SELECTOR_LENGTH,
    MAX_STEPS,
    MAX_TEXT_LENGTH,
    MAX_URL_LENGTH,
    StepValidationError,
    plan_steps,
    validate_step,
    validate_steps,
)
from tasks.runner.smart_selectors import selector_candidates


def errors_of(steps) -> dict[str, list[str]]:
    with pytest.raises(StepValidationError) as caught:
        validate_steps(steps)
    return caught.value.messages


def test_valid_steps_are_normalised():
    steps = validate_steps(
        [
            {"action": " GOTO ", "url": "  https://example.com/a?b=c  "},
            {"action": "fill", "selector": " #q ", "text": "  two spaces kept  "},
            {"action": "fill", "selector": "#q", "text": ""},
            {"action": "click", "selector": "text=Search", "timeout_ms": 2500},
            {"action": "press", "key": "Enter"},
            {"action": "press", "selector": "#q", "key": "Control+A"},
            {"action": "wait_for", "selector": "@search-box"},
            {"action": "wait_for", "text": "Results"},
            {"action": "expect_text", "text": "Results for"},
            {"action": "click", "selector": "@button=Find it"},
        ]
    )
    assert steps[0] == {"action": "goto", "url": "https://example.com/a?b=c"}
    assert steps[1] == {"action": "fill", "selector": "#q", "text": "  two spaces kept  "}
    assert steps[2]["text"] == ""
    assert steps[3] == {"action": "click", "selector": "text=Search", "timeout_ms": 2500}
    assert steps[5] == {"action": "press", "selector": "#q", "key": "Control+A"}
    assert [s["action"] for s in steps] == [
        "goto",
        "fill",
        "fill",
        "click",
        "press",
        "press",
        "wait_for",
        "wait_for",
        "expect_text",
        "click",
    ]


def test_none_and_empty_mean_no_steps():
    assert validate_steps(None) == []
    assert validate_steps([]) == []


@pytest.mark.parametrize(
    ("steps", "key", "fragment"),
    [
        ({"action": "goto"}, "steps", "Expected a list"),
        ("goto http://x", "steps", "Expected a list"),
        ([{"action": "expect_text", "text": "x"}] * (MAX_STEPS + 1), "steps", f"At most {MAX_STEPS}"),
        (["goto"], "0", "must be an object"),
        ([{"url": "http://example.com"}], "0", '"action" is required'),
        ([{"action": 3}], "0", '"action" must be a string'),
        ([{"action": "hover", "selector": "a"}], "0", "Unknown action 'hover'"),
        ([{"action": "evaluate", "script": "alert(1)"}], "0", "Unknown action"),
        ([{"action": "goto"}], "0", '"url" is required'),
        ([{"action": "goto", "url": "file:///etc/passwd"}], "0", "Only http:// and https://"),
        ([{"action": "goto", "url": "FILE:///etc/passwd"}], "0", "Only http:// and https://"),
        ([{"action": "goto", "url": "javascript:alert(1)"}], "0", "Only http:// and https://"),
        ([{"action": "goto", "url": "data:text/html,<b>x</b>"}], "0", "Only http:// and https://"),
        ([{"action": "goto", "url": "chrome://settings"}], "0", "Only http:// and https://"),
        ([{"action": "goto", "url": "ftp://example.com/"}], "0", "Only http:// and https://"),
        ([{"action": "goto", "url": "example.com"}], "0", "Only http:// and https://"),
        ([{"action": "goto", "url": "http:///path"}], "0", "host name"),
        ([{"action": "goto", "url": "http://exa mple.com/"}], "0", "spaces or control"),
        ([{"action": "goto", "url": "http://example.com:99999/"}], "0", "valid URL"),
        ([{"action": "goto", "url": "http://example.com/" + "a" * MAX_URL_LENGTH}], "0", "at most"),
        ([{"action": "goto", "url": 42}], "0", "Must be a string"),
        ([{"action": "goto", "url": ""}], "0", "may not be blank"),
        ([{"action": "fill", "text": "x"}], "0", '"selector" is required'),
        ([{"action": "fill", "selector": "#q"}], "0", '"text" is required'),
        ([{"action": "fill", "selector": "#q", "text": 5}], "0", "Must be a string"),
        ([{"action": "fill", "selector": "#q", "text": None}], "0", "Must be a string"),
        ([{"action": "fill", "selector": "#q", "text": "x" * (MAX_TEXT_LENGTH + 1)}], "0", "at most"),
        ([{"action": "fill", "selector": "#q", "text": "a\x00b"}], "0", "NUL"),
        ([{"action": "click"}], "0", '"selector" is required'),
        ([{"action": "click", "selector": "   "}], "0", "may not be blank"),
        ([{"action": "click", "selector": ["#a"]}], "0", "Must be a string"),
        ([{"action": "click", "selector": "#" + "a" * MAX_SELECTOR_LENGTH}], "0", "at most"),
        ([{"action": "click", "selector": "@searchbox"}], "0", "Unknown smart selector"),
        ([{"action": "click", "selector": "@button="}], "0", "Unknown smart selector"),
        ([{"action": "click", "selector": "a", "selektor": "b"}], "0", "Unknown field 'selektor'"),
        ([{"action": "press"}], "0", '"key" is required'),
        ([{"action": "press", "key": "Enter now"}], "0", "key name"),
        ([{"action": "press", "key": "x" * 65}], "0", "at most"),
        ([{"action": "wait_for"}], "0", "exactly one"),
        ([{"action": "wait_for", "selector": "a", "text": "b"}], "0", "exactly one"),
        ([{"action": "expect_text"}], "0", '"text" is required'),
        ([{"action": "expect_text", "text": "  "}], "0", "may not be blank"),
        ([{"action": "click", "selector": "a", "timeout_ms": 10**9}], "0", "between"),
        ([{"action": "click", "selector": "a", "timeout_ms": "500"}], "0", "integer"),
        ([{"action": "click", "selector": "a", "timeout_ms": True}], "0", "integer"),
    ],
)
def test_bad_steps_are_rejected_with_a_message_per_step(steps, key, fragment):
    messages = errors_of(steps)
    assert key in messages, messages
    assert any(fragment in text for text in messages[key]), messages


def test_every_bad_step_is_reported_not_only_the_first():
    messages = errors_of(
        [
            {"action": "goto", "url": "https://example.com"},
            {"action": "goto", "url": "file:///etc/passwd"},
            {"action": "click"},
            {"action": "expect_text", "text": "fine"},
            {"action": "teleport"},
        ]
    )
    assert sorted(messages) == ["1", "2", "4"]
    assert all(isinstance(text, str) for texts in messages.values() for text in texts)


def test_the_step_limit_itself_is_allowed():
    assert len(validate_steps([{"action": "expect_text", "text": "x"}] * MAX_STEPS)) == MAX_STEPS


def test_plan_with_enter():
    plan = plan_steps(
        start_url="https://shop.example/",
        search_input_input="red lamp",
        search_input_action="submit",
        expected_outcome="Results for red lamp",
    )
    assert plan == [
        {"action": "goto", "url": "https://shop.example/"},
        {"action": "fill", "selector": "@search-box", "text": "red lamp"},
        {"action": "press", "selector": "@search-box", "key": "Enter"},
        {"action": "expect_text", "text": "Results for red lamp"},
    ]


@pytest.mark.parametrize("action", ["", "Enter", "press enter", " SUBMIT ", "return"])
def test_plan_submits_with_enter_by_default(action):
    plan = plan_steps(
        start_url="https://shop.example/", search_input_input="x", search_input_action=action, expected_outcome=""
    )
    assert plan[-1] == {"action": "press", "selector": "@search-box", "key": "Enter"}


@pytest.mark.parametrize(
    ("action", "selector"),
    [
        ("click", "@search-button"),
        ("Click", "@search-button"),
        ("Find", "@button=Find"),
        ("click Go now", "@button=Go now"),
        ('click "Search it"', "@button=Search it"),
    ],
)
def test_plan_clicks_a_button(action, selector):
    plan = plan_steps(
        start_url="https://shop.example/", search_input_input="x", search_input_action=action, expected_outcome="y"
    )
    assert plan[2] == {"action": "click", "selector": selector}
    assert plan[3] == {"action": "expect_text", "text": "y"}
    assert selector_candidates(selector)  # the driver knows how to resolve it


def test_plan_without_search_text_only_opens_the_page_and_looks():
    plan = plan_steps(
        start_url="https://shop.example/", search_input_input="", search_input_action="", expected_outcome="Welcome"
    )
    assert plan == [
        {"action": "goto", "url": "https://shop.example/"},
        {"action": "expect_text", "text": "Welcome"},
    ]


@pytest.mark.parametrize("start_url", ["", "file:///etc/passwd", "javascript:alert(1)", "not a url", None])
def test_plan_needs_an_http_start_url(start_url):
    with pytest.raises(StepValidationError) as caught:
        plan_steps(start_url=start_url, search_input_input="x", search_input_action="", expected_outcome="")
    assert list(caught.value.messages) == ["start_url"]


def test_plan_rejects_oversized_fields_by_name():
    with pytest.raises(StepValidationError) as caught:
        plan_steps(
            start_url="https://shop.example/",
            search_input_input="x" * (MAX_TEXT_LENGTH + 1),
            search_input_action="y" * 1000,
            expected_outcome="z",
        )
    assert sorted(caught.value.messages) == ["search_input_action", "search_input_input"]


def test_button_label_with_quotes_is_quoted_for_playwright():
    candidates = selector_candidates('@button=Say "hi" \\ now')
    assert candidates[0] == 'internal:role=button[name="Say \\"hi\\" \\\\ now"s]'


def test_one_step_is_validated_on_its_own_with_the_same_rules():
    assert validate_step({"action": " Press ", "key": " Enter ", "selector": " #q "}) == {
        "action": "press",
        "key": "Enter",
        "selector": "#q",
    }
    bad = {"action": "click", "selektor": "#q", "timeout_ms": 5}
    with pytest.raises(StepValidationError) as caught:
        validate_step(bad)
    assert list(caught.value.messages) == ["step"]
    # The list reports the same messages under the step's index.
    assert errors_of([{"action": "goto", "url": "https://example.com"}, bad]) == {"1": caught.value.messages["step"]}


def test_every_action_is_listed_with_its_fields():
    assert ACTIONS == ("goto", "fill", "click", "press", "wait_for", "expect_text")
    for action in ACTIONS:
        required, optional = ACTION_FIELDS[action]
        minimal = {"action": action, **{name: "https://example.com" if name == "url" else "x" for name in required}}
        if action == "wait_for":
            minimal["text"] = "x"
        assert validate_step(minimal)["action"] == action, action
        with pytest.raises(StepValidationError):
            validate_step({**minimal, "not_a_field": 1})
