import io
import sys

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from accounts.models import AuthSession, User

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client, make_user):
    admin = make_user("root", is_staff=True, is_superuser=True)
    client.force_login(admin)
    return client


def test_admin_deactivate_action_revokes_sessions(admin_client, user, login, client_for):
    token_client = client_for(login(user).access)
    response = admin_client.post(
        "/admin/accounts/user/", {"action": "deactivate_and_revoke", "_selected_action": [user.pk]}, follow=True
    )
    assert response.status_code == 200
    user.refresh_from_db()
    assert user.is_active is False
    assert token_client.get("/api/v1/auth/me").status_code == 401


def test_admin_session_revoke_action(admin_client, user, login, client_for):
    pair = login(user)
    session = AuthSession.objects.get(pk=pair.access.session_id)
    response = admin_client.post(
        "/admin/accounts/authsession/", {"action": "revoke", "_selected_action": [session.pk]}, follow=True
    )
    assert response.status_code == 200
    assert client_for(pair.access).get("/api/v1/auth/me").status_code == 401


def test_admin_pages_render(admin_client, user, login):
    login(user)
    for url in [
        "/admin/accounts/user/",
        f"/admin/accounts/user/{user.pk}/change/",
        "/admin/accounts/authsession/",
        "/admin/accounts/user/?q=ali",
        "/admin/accounts/user/add/",
    ]:
        assert admin_client.get(url).status_code == 200, url


def run(command, *args, stdin=""):
    out = io.StringIO()
    old = sys.stdin
    sys.stdin = io.StringIO(stdin)
    try:
        call_command(command, *args, stdout=out)
    finally:
        sys.stdin = old
    return out.getvalue()


def test_create_user_reads_password_from_stdin():
    out = run(
        "create_user",
        "--username",
        "ops",
        "--email",
        "ops@example.com",
        "--admin",
        "--password-stdin",
        stdin="a-long-enough-passphrase\n",
    )
    assert "Created admin 'ops'" in out
    user = User.objects.get(username="ops")
    assert user.is_staff and user.check_password("a-long-enough-passphrase")


@pytest.mark.parametrize(
    ("password", "message"), [("short", "too short"), ("a-long-enough-passphrase", "already registered")]
)
def test_create_user_errors_are_one_line(user, password, message):
    with pytest.raises(CommandError, match=message):
        run(
            "create_user",
            "--username",
            "ALICE" if "already" in message else "newbie",
            "--password-stdin",
            stdin=password + "\n",
        )


SETUP_FIRST_ADMIN = (
    "setup_auth",
    "--username",
    "boss",
    "--email",
    "boss@example.com",
    "--password-stdin",
    "--no-input",
)


def test_setup_auth_creates_the_first_admin_once():
    out = run(*SETUP_FIRST_ADMIN, stdin="a-long-enough-passphrase\n")
    assert "Created admin 'boss'" in out
    assert "already exists" in run("setup_auth", "--no-input")


def test_createsuperuser_works_with_the_custom_user(monkeypatch):
    monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", "a-long-enough-passphrase")
    call_command(
        "createsuperuser", "--noinput", "--username", "root", "--email", "root@example.com", stdout=io.StringIO()
    )
    assert User.objects.get(username="root").is_superuser


def test_admin_setting_a_password_ends_the_users_sessions(admin_client, user, login, client_for):
    token_client = client_for(login(user).access)
    response = admin_client.post(
        f"/admin/accounts/user/{user.pk}/password/",
        {"password1": "a-fresh-admin-set-passphrase", "password2": "a-fresh-admin-set-passphrase"},
    )
    assert response.status_code == 302
    assert token_client.get("/api/v1/auth/me").status_code == 401


def test_setup_auth_can_create_an_api_key_for_the_admin(client_for):
    out = run(*SETUP_FIRST_ADMIN, "--api-key", "deploy", stdin="a-long-enough-passphrase\n")
    key = out.rsplit("store it now): ", 1)[1].strip()
    assert key.startswith("sk_")
    assert client_for(key).get("/api/v1/auth/me").json()["username"] == "boss"
