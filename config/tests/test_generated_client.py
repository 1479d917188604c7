"""A Python client generated from docs/openapi.yaml works against the real server (issue 16).

openapi-python-client runs in a venv of its own (var/test-client-venv, made once and reused while the
pinned versions match), generates the client into tmp_path, and a script run by that venv's python
registers, logs in, creates a post with the bearer token and reads a missing post, against
pytest-django's live_server. What a generated client cannot read (an undeclared status, a body that
does not fit its model) comes back as None from its sync() calls, so the script prints what it got.
"""

import json
import os
import subprocess
import textwrap

import pytest
from django.conf import settings

from config.tests import client_venv

pytestmark = [pytest.mark.client, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

SCRIPT = textwrap.dedent(
    """
    import json, sys
    from gatehouse_client import AuthenticatedClient, Client
    from gatehouse_client.api.auth import auth_login_create, auth_register_create
    from gatehouse_client.api.posts import posts_create, posts_retrieve
    from gatehouse_client.models import Error, LoginRequest, PostInputRequest, PostOutput, RegisterRequest, TokenPair

    base_url, password = sys.argv[1], sys.argv[2]
    anonymous = Client(base_url=base_url)
    registered = auth_register_create.sync(
        client=anonymous, body=RegisterRequest(username="carol", email="carol@example.com", password=password)
    )
    tokens = auth_login_create.sync(client=anonymous, body=LoginRequest(username="carol", password=password))
    assert isinstance(tokens, TokenPair), tokens
    client = AuthenticatedClient(base_url=base_url, token=tokens.access_token)
    post = posts_create.sync(client=client, body=PostInputRequest(content="Written by a generated client"))
    assert isinstance(post, PostOutput), post
    missing = posts_retrieve.sync(id=str(post.id + 1000), client=client)
    print(json.dumps({
        "registered": type(registered).__name__,
        "username": registered.username,
        "post_type": type(post).__name__,
        "post_content": post.content,
        "post_author": post.author.username,
        "missing_type": type(missing).__name__,
        "missing_code": missing.code if isinstance(missing, Error) else None,
    }))
    """
)


@pytest.fixture(scope="session")
def client_venv_python():
    return client_venv.venv_python()


def test_a_generated_client_registers_logs_in_posts_and_reads_a_404_as_an_error(
    live_server, client_venv_python, tmp_path, password
):
    config = tmp_path / "generator.yml"
    config.write_text("post_hooks: []\n")  # the default hooks run ruff, which the venv does not have
    generated = subprocess.run(
        [
            str(client_venv_python.parent / "openapi-python-client"),
            "generate",
            "--path",
            str(settings.BASE_DIR / "docs" / "openapi.yaml"),
            "--meta",
            "none",
            "--config",
            str(config),
            "--output-path",
            str(tmp_path / "gatehouse_client"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert generated.returncode == 0, generated.stdout + generated.stderr
    # The generator warns about each part of the document it cannot turn into code.
    assert "Warning" not in generated.stdout, generated.stdout

    run = subprocess.run(
        [str(client_venv_python), "-c", SCRIPT, live_server.url, password],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(tmp_path)},
    )
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout) == {
        "registered": "RegisteredUser",
        "username": "carol",
        "post_type": "PostOutput",
        "post_content": "Written by a generated client",
        "post_author": "carol",
        "missing_type": "Error",
        "missing_code": "not_found",
    }
