"""Agent runs end to end: the API, a real Celery worker, Chromium, and the official SDK against the local model server.

The original system's walk-through (seeds/000): store a provider key encrypted with the
published RSA key, set the agent settings, initiate with an instruction, read the result and
its usage. Then the ways it must fail, and the key kept out of everything a run leaves.
"""

import base64
import subprocess
import sys
import time

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from django.db import connection

from tasks.tests.factories import create_task, fetch, script_environment, wait_for_status, wait_until
from tasks.tests.llm_server import slow, tool

pytestmark = [pytest.mark.browser, pytest.mark.worker, pytest.mark.django_db(transaction=True)]

FINISHED = ("completed", "failed", "cancelled")
SECRET = "sk-live-AgentRunKeyThatMustNeverLeak-7f3a9c"
OAEP = padding.OAEP(mgf=padding.MGF1(algorithm=hashes.SHA256()), algorithm=hashes.SHA256(), label=None)


@pytest.fixture
def keyring(settings, tmp_path):
    """An RSA keyring shared by the test process and the worker, outside var/."""
    path = tmp_path / "rsa_private_key.pem"
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    path.chmod(0o600)
    settings.RSA_PRIVATE_KEY_FILE = str(path)
    return path


@pytest.fixture
def worker(start_worker, keyring):
    return start_worker(RSA_PRIVATE_KEY_FILE=str(keyring))


def store_encrypted_key(client, llm_server, secret=SECRET) -> dict:
    public = client.get("/api/v1/crypto/public-key").json()
    assert public["algorithm"] == "RSA-OAEP-256"
    encrypted = serialization.load_pem_public_key(public["public_key"].encode()).encrypt(secret.encode(), OAEP)
    response = client.post(
        "/api/v1/provider-keys",
        {
            "provider": "openai_compatible",
            "name": "local model",
            "base_url": llm_server.openai_base_url,
            "encrypted_api_key": base64.b64encode(encrypted).decode(),
            "kid": public["kid"],
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    return response.json()


def agent_task(client, **settings) -> int:
    task_id = create_task(client, "Agent search")
    response = client.patch(
        f"/api/v1/tasks/{task_id}/agent-settings",
        {"llm_provider": "openai_compatible", "llm_model": "test-model", "temperature": 0.7, **settings},
        format="json",
    )
    assert response.status_code == 200, response.content
    return task_id


def test_the_original_walk_through_with_a_local_model(auth_client, llm_server, local_site, worker, tmp_path):
    llm_server.expected_key = SECRET
    llm_server.script(
        [
            tool("fill", {"ref": 1, "text": "garden lamp", "reason": "Type the query."}),
            tool("click", {"ref": 2, "reason": "Search."}),
            tool("done", {"success": True, "summary": "Results are shown."}),
        ]
    )
    key = store_encrypted_key(auth_client, llm_server)
    assert key["hint"] == SECRET[-4:] and "api_key" not in key
    task_id = agent_task(auth_client)

    response = auth_client.patch(
        f"/api/v1/tasks/{task_id}/initiate",
        {
            "instruction": "Search the shop for a garden lamp",
            "start_url": local_site.url("/"),
            "expected_outcome": "Results for garden lamp",
        },
        format="json",
    )
    assert response.status_code == 202, response.content
    assert response.json()["progress"] == {"done": 0, "total": 1 + 25}
    task = wait_for_status(auth_client, task_id, FINISHED)
    assert task["status"] == "completed", task["error"]
    assert task["agent_settings"]["provider_key_id"] is None and task["agent_settings"]["max_steps"] == 25

    result = auth_client.get(f"/api/v1/results/{task_id}").json()
    assert (result["actual_status"], result["passed"]) == ("success", True)
    assert result["usage"]["model_calls"] == 3 and result["usage"]["input_tokens"] > 0
    assert [(h["action"], h["status"]) for h in result["history"]] == [
        ("goto", "ok"),
        ("fill", "ok"),
        ("click", "ok"),
        ("expect_text", "ok"),
    ]
    assert [h["reason"] for h in result["history"][1:3]] == ["Type the query.", "Search."]
    assert llm_server.requests[0].body["temperature"] == 0.7

    # The replay needs no model and no key.
    script = fetch(auth_client, result["result_json_url"])
    history = fetch(auth_client, result["history_url"])
    gif = fetch(auth_client, result["result_gif"])
    path = tmp_path / "agent_replay.py"
    path.write_bytes(script)
    replay = subprocess.run([sys.executable, str(path)], capture_output=True, timeout=120, env=script_environment())
    assert replay.returncode == 0, replay.stderr.decode()[-2000:]

    # The plaintext key is nowhere but in the worker's memory for the call.
    for leftover in (script, history, gif, worker.log().encode()):
        assert SECRET.encode() not in leftover
    for url in (f"/api/v1/tasks/{task_id}", f"/api/v1/results/{task_id}", "/api/v1/provider-keys"):
        assert SECRET not in auth_client.get(url).content.decode()
    db = connection.settings_dict
    dump = subprocess.run(
        ["pg_dump", "-h", db["HOST"] or "127.0.0.1", "-p", str(db["PORT"] or 5432), "-U", db["USER"], db["NAME"]],
        capture_output=True,
        timeout=60,
        check=True,
    ).stdout
    assert b"provider" in dump and SECRET.encode() not in dump
    assert SECRET[-12:].encode() not in dump


def test_a_rejected_key_fails_the_run_with_the_message(auth_client, llm_server, local_site, worker):
    llm_server.expected_key = "sk-another-key"
    store_encrypted_key(auth_client, llm_server)
    task_id = agent_task(auth_client)

    auth_client.patch(f"/api/v1/tasks/{task_id}/initiate", {"instruction": "Look around"}, format="json")
    task = wait_for_status(auth_client, task_id, FINISHED)

    assert task["status"] == "failed" and "provider rejected the key" in task["error"]
    assert SECRET not in task["error"]


def test_cancel_during_a_slow_model_answer(auth_client, llm_server, local_site, worker):
    llm_server.script([slow(60, then=tool("done", {"success": True, "summary": "late"}))])
    store_encrypted_key(auth_client, llm_server)
    task_id = agent_task(auth_client)
    auth_client.patch(f"/api/v1/tasks/{task_id}/initiate", {"instruction": "Wait for me"}, format="json")
    wait_until(lambda: llm_server.requests, timeout=60, what="the model call")

    assert auth_client.post(f"/api/v1/tasks/{task_id}/cancel").status_code == 202
    cancelled_at = time.monotonic()
    worker.wait_for_log("succeeded", timeout=10)  # the job returned: the worker is free again
    assert time.monotonic() - cancelled_at < 5
    assert auth_client.get(f"/api/v1/tasks/{task_id}").json()["status"] == "cancelled"
    assert len(llm_server.requests) == 1


def test_initiate_refuses_what_an_agent_run_cannot_do(
    auth_client, make_user, login, client_for, llm_server, local_site, keyring
):
    task_id = agent_task(auth_client)
    initiate = f"/api/v1/tasks/{task_id}/initiate"

    # No key for the provider (and the server has none for openai_compatible).
    response = auth_client.patch(initiate, {"instruction": "Search"}, format="json")
    assert response.status_code == 400 and "provider-keys" in str(response.json()["llm_provider"])

    key = store_encrypted_key(auth_client, llm_server)
    steps = [{"action": "goto", "url": local_site.url("/")}]
    response = auth_client.patch(initiate, {"instruction": "Search", "steps": steps}, format="json")
    assert response.status_code == 400 and "steps" in response.json()

    # A chosen key that is deleted afterwards: the next initiate is a 400, not a fallback.
    chosen = auth_client.patch(f"/api/v1/tasks/{task_id}/agent-settings", {"provider_key_id": key["id"]}, format="json")
    assert chosen.status_code == 200 and chosen.json()["agent_settings"]["provider_key_id"] == key["id"]
    store_encrypted_key(auth_client, llm_server, secret="sk-second-key-000000")
    assert auth_client.delete(f"/api/v1/provider-keys/{key['id']}").status_code == 204
    response = auth_client.patch(initiate, {"instruction": "Search"}, format="json")
    assert response.status_code == 400 and "provider_key_id" in response.json()

    # Another user's key cannot be chosen.
    stranger_key = store_encrypted_key(client_for(login(make_user("mallory")).access), llm_server)
    response = auth_client.patch(
        f"/api/v1/tasks/{task_id}/agent-settings", {"provider_key_id": stranger_key["id"]}, format="json"
    )
    assert response.status_code == 400 and "provider_key_id" in response.json()
    assert auth_client.get(f"/api/v1/tasks/{task_id}").json()["status"] == "created"


def test_the_original_agent_settings_example_answers_200(auth_client):
    task_id = create_task(auth_client)

    response = auth_client.patch(
        f"/api/v1/tasks/{task_id}/agent-settings",
        {"llm_provider": "openai", "llm_model": "gpt-4o", "temperature": 0.7},
        format="json",
    )

    assert response.status_code == 200
    assert response.json()["agent_settings"] == {
        "llm_provider": "openai",
        "llm_model": "gpt-4o",
        "temperature": 0.7,
        "provider_key_id": None,
        "max_steps": 25,
    }
    for bad in ({"max_steps": 0}, {"max_steps": 101}, {"llm_provider": "gemini"}, {"provider_key_id": 999999}):
        assert auth_client.patch(f"/api/v1/tasks/{task_id}/agent-settings", bad, format="json").status_code == 400
