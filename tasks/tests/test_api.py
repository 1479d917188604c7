"""The tasks endpoints: shape, ownership, settings ranges, initiate/cancel/delete rules, bad input."""

import pytest
from django.core.files.storage import default_storage

from tasks import services
from tasks.models import Task, TaskStatus
from tasks.tests.factories import TaskFactory, record_result

pytestmark = pytest.mark.django_db

SITE = "http://shop.example.test/"
PLANNED = {
    "instruction": "Search the shop for a lamp",
    "start_url": SITE,
    "search_input_input": "lamp",
    "search_input_action": "submit",
    "expected_outcome": "Results for lamp",
}


def url(task_id, suffix=""):
    return f"/api/v1/tasks/{task_id}{suffix}"


@pytest.fixture
def task(user):
    return TaskFactory(owner=user, task_name="Shop search")


@pytest.fixture
def queued(task):
    return services.task_initiate(task=task, **PLANNED)


def test_create_returns_the_task_in_created_state(auth_client, user):
    response = auth_client.post("/api/v1/tasks", {"task_name": "Example Task"}, format="json")

    assert response.status_code == 201
    body = response.json()
    assert body["task_name"] == "Example Task"
    assert body["status"] == "created"
    assert body["agent_settings"] == {
        "llm_provider": "none",
        "llm_model": "",
        "temperature": 0.0,
        "provider_key_id": None,
        "max_steps": 25,
    }
    assert body["browser_settings"] == {"browser_headless_mode": True, "window_width": 1280, "window_height": 720}
    assert body["progress"] == {"done": 0, "total": 0}
    assert body["steps"] == [] and body["error"] == "" and body["expected_status"] == "success"
    assert body["queued_at"] is None and body["started_at"] is None and body["finished_at"] is None
    assert Task.objects.get(pk=body["id"]).owner == user


@pytest.mark.parametrize("payload", [{}, {"task_name": ""}, {"task_name": "x" * 201}])
def test_create_rejects_a_missing_or_bad_name(auth_client, payload):
    response = auth_client.post("/api/v1/tasks", payload, format="json")

    assert response.status_code == 400
    assert "task_name" in response.json()


def test_anonymous_requests_get_401(api_client, task):
    assert api_client.get("/api/v1/tasks").status_code == 401
    assert api_client.get(url(task.pk)).status_code == 401


def test_list_shows_only_my_tasks_newest_first(auth_client, user, other_user, django_assert_max_num_queries):
    mine = [TaskFactory(owner=user) for _ in range(5)]
    TaskFactory(owner=other_user)

    with django_assert_max_num_queries(4):  # session auth, count, page
        response = auth_client.get("/api/v1/tasks")

    assert response.status_code == 200
    ids = [item["id"] for item in response.json()["results"]]
    assert ids == [t.pk for t in reversed(mine)]


def test_list_filters_by_status_and_rejects_an_unknown_one(auth_client, user, queued):
    TaskFactory(owner=user)

    queued_only = auth_client.get("/api/v1/tasks?status=queued").json()["results"]
    assert [item["id"] for item in queued_only] == [queued.pk]
    response = auth_client.get("/api/v1/tasks?status=bogus")
    assert response.status_code == 400
    assert "status" in response.json()


def test_another_users_task_is_404_for_every_endpoint(auth_client, other_user):
    theirs = TaskFactory(owner=other_user)

    assert auth_client.get(url(theirs.pk)).status_code == 404
    assert auth_client.delete(url(theirs.pk)).status_code == 404
    assert auth_client.patch(url(theirs.pk, "/agent-settings"), {"temperature": 1}, format="json").status_code == 404
    assert (
        auth_client.patch(url(theirs.pk, "/browser-settings"), {"window_width": 800}, format="json").status_code == 404
    )
    assert auth_client.patch(url(theirs.pk, "/initiate"), PLANNED, format="json").status_code == 404
    assert auth_client.post(url(theirs.pk, "/cancel")).status_code == 404
    theirs.refresh_from_db()
    assert theirs.status == TaskStatus.CREATED and theirs.run_number == 0


def test_settings_can_be_changed_while_idle(auth_client, task):
    agent = auth_client.patch(
        url(task.pk, "/agent-settings"), {"llm_model": "small", "temperature": 1.5}, format="json"
    )
    browser = auth_client.patch(
        url(task.pk, "/browser-settings"),
        {"browser_headless_mode": False, "window_width": 320, "window_height": 2160},
        format="json",
    )

    assert agent.status_code == 200
    assert agent.json()["agent_settings"] == {
        "llm_provider": "none",
        "llm_model": "small",
        "temperature": 1.5,
        "provider_key_id": None,
        "max_steps": 25,
    }
    assert browser.status_code == 200
    assert browser.json()["browser_settings"] == {
        "browser_headless_mode": False,
        "window_width": 320,
        "window_height": 2160,
    }


@pytest.mark.parametrize(
    ("suffix", "payload", "field"),
    [
        ("/agent-settings", {"temperature": -0.1}, "temperature"),
        ("/agent-settings", {"temperature": 2.01}, "temperature"),
        ("/agent-settings", {"temperature": "NaN"}, "temperature"),
        ("/agent-settings", {"temperature": True}, "temperature"),
        ("/agent-settings", {"llm_provider": "skynet"}, "llm_provider"),
        ("/browser-settings", {"window_width": 319}, "window_width"),
        ("/browser-settings", {"window_width": 3841}, "window_width"),
        ("/browser-settings", {"window_height": 239}, "window_height"),
        ("/browser-settings", {"window_height": 2161}, "window_height"),
        ("/browser-settings", {"browser_headless_mode": "maybe"}, "browser_headless_mode"),
    ],
)
def test_out_of_range_settings_are_400_with_the_field(auth_client, task, suffix, payload, field):
    response = auth_client.patch(url(task.pk, suffix), payload, format="json")

    assert response.status_code == 400
    assert field in response.json()
    task.refresh_from_db()
    assert (task.temperature, task.window_width, task.window_height) == (0.0, 1280, 720)


def test_settings_are_frozen_while_queued(auth_client, queued):
    agent = auth_client.patch(url(queued.pk, "/agent-settings"), {"temperature": 1}, format="json")
    browser = auth_client.patch(url(queued.pk, "/browser-settings"), {"window_width": 800}, format="json")

    assert agent.status_code == 409 and browser.status_code == 409
    assert "queued or running" in agent.json()["detail"]
    queued.refresh_from_db()
    assert queued.temperature == 0.0 and queued.window_width == 1280


def test_initiate_queues_a_run_and_enqueues_after_commit(auth_client, task, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = auth_client.patch(url(task.pk, "/initiate"), PLANNED, format="json")

    assert response.status_code == 202
    body = response.json()
    assert body["status"] == "queued"
    assert body["run"] == 1
    assert body["queued_at"] is not None
    assert body["progress"] == {"done": 0, "total": 4}  # goto, fill, press Enter, expect_text
    assert body["steps"] == []  # planned at run time from the fields
    assert body["search_input_input"] == "lamp" and body["expected_outcome"] == "Results for lamp"
    assert len(callbacks) == 1  # the message is sent only once the row is committed


def test_initiate_with_explicit_steps_stores_them_normalised(auth_client, task):
    steps = [
        {"action": "GOTO", "url": f" {SITE} "},
        {"action": "fill", "selector": "@search-box", "text": " lamp "},
        {"action": "press", "key": "Enter"},
        {"action": "expect_text", "text": "Results for lamp"},
    ]
    response = auth_client.patch(url(task.pk, "/initiate"), {"instruction": "x", "steps": steps}, format="json")

    assert response.status_code == 202
    assert response.json()["steps"][0] == {"action": "goto", "url": SITE}
    assert response.json()["steps"][1]["text"] == " lamp "
    assert response.json()["progress"]["total"] == 4


def test_initiate_while_queued_or_running_is_409(auth_client, queued):
    assert auth_client.patch(url(queued.pk, "/initiate"), PLANNED, format="json").status_code == 409
    claim = services.task_run_claim(task_id=queued.pk, run_number=1)
    assert claim is not None
    response = auth_client.patch(url(queued.pk, "/initiate"), PLANNED, format="json")
    assert response.status_code == 409
    queued.refresh_from_db()
    assert queued.run_number == 1 and queued.status == TaskStatus.RUNNING


def test_each_initiate_defines_the_whole_run(auth_client, task):
    steps = [{"action": "goto", "url": SITE}]
    auth_client.patch(url(task.pk, "/initiate"), {"instruction": "x", "steps": steps}, format="json")
    services.task_cancel(task=task)

    response = auth_client.patch(url(task.pk, "/initiate"), PLANNED, format="json")

    assert response.status_code == 202
    assert response.json()["steps"] == []  # the earlier explicit steps do not linger
    assert response.json()["run"] == 2


BAD_INITIATES = [
    ({"start_url": SITE}, "instruction", None),
    ({"instruction": "x"}, "start_url", None),  # no steps and nothing to plan from
    ({"instruction": "x", "start_url": "file:///etc/passwd"}, "start_url", "http"),
    ({"instruction": "x", "start_url": "javascript:alert(1)"}, "start_url", "http"),
    ({"instruction": "x", "steps": [{"action": "hover", "selector": "a"}]}, "steps", "Unknown action"),
    ({"instruction": "x", "steps": [{"action": "click"}]}, "steps", "selector"),
    ({"instruction": "x", "steps": [{"action": "fill", "text": "a"}]}, "steps", "selector"),
    ({"instruction": "x", "steps": [{"action": "goto", "url": "file:///etc/passwd"}]}, "steps", "http"),
    ({"instruction": "x", "steps": [{"action": "goto", "url": SITE, "selektor": "a"}]}, "steps", "Unknown field"),
    ({"instruction": "x", "steps": [{"action": "goto", "url": SITE}] * 101}, "steps", "100"),
    ({"instruction": "x", "steps": "goto"}, "steps", "list"),
    ({**PLANNED, "expected_status": "maybe"}, "expected_status", None),
    ({**PLANNED, "search_input_action": "x" * 201}, "search_input_action", None),
]


@pytest.mark.parametrize(("payload", "field", "text"), BAD_INITIATES)
def test_bad_initiate_input_is_400_with_field_messages(auth_client, task, payload, field, text):
    response = auth_client.patch(url(task.pk, "/initiate"), payload, format="json")

    assert response.status_code == 400, response.content
    body = response.json()
    assert field in body
    if text:
        assert text in str(body[field])
    task.refresh_from_db()
    assert task.status == TaskStatus.CREATED and task.run_number == 0


def test_a_bad_step_is_reported_under_its_index(auth_client, task):
    steps = [{"action": "goto", "url": SITE}, {"action": "click"}]

    response = auth_client.patch(url(task.pk, "/initiate"), {"instruction": "x", "steps": steps}, format="json")

    assert response.status_code == 400
    assert list(response.json()["steps"]) == ["1"]


def test_too_many_active_runs_per_user_is_409(auth_client, user, settings):
    settings.TASKS_MAX_ACTIVE_PER_USER = 2
    for _ in range(2):
        services.task_initiate(task=TaskFactory(owner=user), **PLANNED)
    third = TaskFactory(owner=user)

    response = auth_client.patch(url(third.pk, "/initiate"), PLANNED, format="json")

    assert response.status_code == 409
    assert "2 tasks queued or running" in response.json()["detail"]


def test_cancel_a_queued_task(auth_client, queued):
    response = auth_client.post(url(queued.pk, "/cancel"))

    assert response.status_code == 202
    assert response.json()["status"] == "cancelled"
    assert response.json()["finished_at"] is not None
    # The message still in the broker finds nothing to do.
    assert services.task_run_claim(task_id=queued.pk, run_number=1) is None


@pytest.mark.parametrize("state", ["created", "completed", "failed", "cancelled"])
def test_cancel_is_409_unless_queued_or_running(auth_client, task, state):
    Task.objects.filter(pk=task.pk).update(status=state)

    response = auth_client.post(url(task.pk, "/cancel"))

    assert response.status_code == 409


def test_delete_a_task(auth_client, task):
    response = auth_client.delete(url(task.pk))

    assert response.status_code == 204
    assert not Task.objects.filter(pk=task.pk).exists()


def test_delete_is_409_while_running_but_allowed_while_queued(auth_client, user, queued):
    services.task_run_claim(task_id=queued.pk, run_number=1)
    assert auth_client.delete(url(queued.pk)).status_code == 409

    other = services.task_initiate(task=TaskFactory(owner=user), **PLANNED)
    assert auth_client.delete(url(other.pk)).status_code == 204
    # The queued run's message, delivered later, is a no-op.
    assert services.task_run_claim(task_id=other.pk, run_number=1) is None


def test_delete_removes_the_result_files_from_storage(auth_client, task, media_root):
    result = record_result(task)  # a finished run with real files
    names = list(result.files.values_list("name", flat=True))
    assert len(names) == 3 and all(default_storage.exists(name) for name in names)

    assert auth_client.delete(url(task.pk)).status_code == 204

    assert not any(default_storage.exists(name) for name in names)
    assert not list((media_root / "results").iterdir())
