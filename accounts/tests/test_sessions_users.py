import pytest

from accounts.models import AuthSession

pytestmark = pytest.mark.django_db

ME = "/api/v1/auth/me"
SESSIONS = "/api/v1/auth/sessions"


def test_sessions_lists_active_sessions_and_marks_the_current_one(user, other_user, login, client_for):
    mine = login(user)
    login(user)
    login(other_user)
    revoked = login(user)
    client_for(revoked.access).post("/api/v1/auth/logout")
    response = client_for(mine.access).get(SESSIONS, HTTP_USER_AGENT="pytest")
    assert response.status_code == 200
    page = response.json()
    assert set(page) >= {"next", "previous", "results"}
    assert len(page["results"]) == 2
    assert [row["current"] for row in page["results"]].count(True) == 1
    current = next(row for row in page["results"] if row["current"])
    assert current["id"] == mine.access.session_id
    assert set(current) == {"id", "created_at", "last_seen", "user_agent", "ip_address", "current"}


def test_login_records_user_agent_and_address(api_client, user, password):
    api_client.post(
        "/api/v1/auth/login",
        {"username": "alice", "password": password},
        format="json",
        HTTP_USER_AGENT="curl/8.0",
        REMOTE_ADDR="192.0.2.7",
    )
    session = AuthSession.objects.get()
    assert (session.user_agent, session.ip_address) == ("curl/8.0", "192.0.2.7")


def test_deleting_a_session_revokes_its_tokens(user, login, client_for, api_client):
    mine, laptop = login(user), login(user)
    assert client_for(mine.access).delete(f"{SESSIONS}/{laptop.access.session_id}").status_code == 204
    assert client_for(laptop.access).get(ME).status_code == 401
    assert (
        api_client.post("/api/v1/auth/refresh", {"refresh_token": str(laptop.refresh)}, format="json").status_code
        == 401
    )
    assert client_for(mine.access).get(ME).status_code == 200


def test_another_users_session_is_404_and_stays_valid(user, other_user, login, client_for):
    mine, theirs = login(user), login(other_user)
    assert client_for(mine.access).delete(f"{SESSIONS}/{theirs.access.session_id}").status_code == 404
    assert client_for(mine.access).delete(f"{SESSIONS}/not-a-uuid").status_code == 404
    assert client_for(theirs.access).get(ME).status_code == 200


def test_me_patch_updates_profile_and_rejects_a_taken_email(auth_client, other_user):
    response = auth_client.patch(ME, {"name": "Alice Liddell"}, format="json")
    assert response.status_code == 200 and response.json()["name"] == "Alice Liddell"
    response = auth_client.patch(ME, {"email": other_user.email.upper()}, format="json")
    assert response.status_code == 409
    assert auth_client.patch(ME, {"email": "nope"}, format="json").status_code == 400
    assert auth_client.patch(ME, {"username": "mallory", "is_admin": True}, format="json").json()["is_admin"] is False


def test_validate_reports_the_jwt(auth_client, user):
    body = auth_client.post("/api/v1/auth/validate").json()
    assert body["valid"] is True and body["auth"] == "jwt"
    assert body["user_id"] == user.pk and body["username"] == "alice"
    assert body["expires_at"]


def test_users_endpoint_is_for_admins_only(auth_client, make_user, login, client_for, user):
    response = auth_client.get("/api/v1/users")
    assert response.status_code == 403
    assert response.json() == {"detail": "Admin privileges required", "code": "permission_denied"}
    assert auth_client.patch(f"/api/v1/users/{user.pk}", {"is_admin": True}, format="json").status_code == 403
    admin = make_user("root", is_staff=True)
    admin_client = client_for(login(admin).access)
    page = admin_client.get("/api/v1/users").json()
    assert {row["username"] for row in page["results"]} == {"alice", "root"}
    assert set(page["results"][0]) == {
        "id",
        "username",
        "email",
        "name",
        "is_active",
        "is_admin",
        "date_joined",
        "last_login",
    }
    assert admin_client.get("/api/v1/users/999999").status_code == 404
    assert admin_client.get("/api/v1/users/abc").status_code == 404


def test_admin_deactivation_makes_the_users_tokens_fail(make_user, login, client_for, user):
    admin_client = client_for(login(make_user("root", is_staff=True)).access)
    victim = client_for(login(user).access)
    assert victim.get(ME).status_code == 200
    response = admin_client.patch(f"/api/v1/users/{user.pk}", {"is_active": False, "name": "Gone"}, format="json")
    assert response.status_code == 200 and response.json()["is_active"] is False
    assert victim.get(ME).status_code == 401


def test_admin_can_promote_and_list_pages(make_user, login, client_for, user):
    for n in range(5):
        make_user(f"extra{n}")
    admin_client = client_for(login(make_user("root", is_staff=True, is_superuser=True)).access)  # roles: superusers'
    assert admin_client.patch(f"/api/v1/users/{user.pk}", {"is_admin": True}, format="json").json()["is_admin"] is True
    page = admin_client.get("/api/v1/users?page_size=3").json()
    assert len(page["results"]) == 3 and page["next"] and page["count"] == 7


def test_users_list_query_count_does_not_grow(make_user, login, client_for, django_assert_max_num_queries):
    admin_client = client_for(login(make_user("root", is_staff=True)).access)
    for n in range(30):
        make_user(f"extra{n}")
    with django_assert_max_num_queries(3):
        assert admin_client.get("/api/v1/users?page_size=100").status_code == 200
