"""Revocation is monotonic: no stale read of a session or its user outlives a logout-all, a password change,
a deactivation, a demotion or a deletion, however the requests interleave with it."""

import threading

import pytest
from django.db import connection

from accounts import services
from accounts.models import User
from config.errors import AuthenticationError

NEW_PASSWORD = "another horse battery staple"


def _authenticate_pausing_after_the_read(raw_token: str, *, loaded: threading.Event, resume: threading.Event, out):
    """Authenticate in this thread, stopping just after the session SELECT has run (so the row it read is
    the one before the revocation) and before the result is cached, until `resume` is set."""

    def pause_after_session_read(execute, sql, params, many, context):
        result = execute(sql, params, many, context)
        if "accounts_authsession" in sql and not loaded.is_set():
            loaded.set()
            resume.wait(timeout=10)
        return result

    try:
        with connection.execute_wrapper(pause_after_session_read):
            out["user"] = services.access_token_authenticate(raw_token=raw_token)[0]
    except Exception as error:  # reported to the test thread
        out["error"] = error
    finally:
        connection.close()


def _revoke(how: str, user: User, password: str) -> None:
    if how == "logout_all":
        services.auth_logout_all(user=user)
    elif how == "password_change":
        services.user_password_change(user=user, current_password=password, new_password=NEW_PASSWORD)
    elif how == "deactivation":
        services.user_deactivate(user=user)
    elif how == "deletion":
        user.delete()
    elif how == "demotion":  # as the Django admin does it: a save through the ORM
        user.is_staff = False
        user.save()


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("how", ["logout_all", "password_change", "deactivation", "deletion", "demotion"])
def test_a_read_from_before_the_revocation_cannot_cache_the_session_back(how, make_user, login, password):
    user = make_user("carol", is_staff=True)
    raw_token = str(login(user).access)
    loaded, resume, out = threading.Event(), threading.Event(), {}
    pausing = dict(loaded=loaded, resume=resume, out=out)
    reader = threading.Thread(target=_authenticate_pausing_after_the_read, args=(raw_token,), kwargs=pausing)
    reader.start()
    try:
        assert loaded.wait(timeout=10), "the reader never read the session"
        _revoke(how, User.objects.get(pk=user.pk), password)  # commits: no transaction around this test
    finally:
        resume.set()
        reader.join(timeout=10)
    assert out.get("user") is not None and out["user"].is_staff, out  # the reader saw the world before

    if how == "demotion":
        assert services.access_token_authenticate(raw_token=raw_token)[0].is_staff is False
    else:
        with pytest.raises(AuthenticationError):
            services.access_token_authenticate(raw_token=raw_token)


ME = "/api/v1/auth/me"


@pytest.mark.redis
@pytest.mark.django_db
def test_authentication_is_one_query_cold_none_warm_and_cold_again_after_a_change(
    user, login, client_for, django_assert_num_queries
):
    client = client_for(login(user).access)
    with django_assert_num_queries(1):
        assert client.get(ME).status_code == 200
    with django_assert_num_queries(0):
        assert client.get(ME).status_code == 200
    user.name = "Alicia"
    user.save()  # any save outdates the cached copy of the row
    with django_assert_num_queries(1):
        assert client.get(ME).json()["name"] == "Alicia"
    with django_assert_num_queries(0):
        assert client.get(ME).json()["name"] == "Alicia"


@pytest.mark.django_db
def test_a_demoted_admin_is_refused_on_the_very_next_request(make_user, login, client_for):
    admin = make_user("root", is_staff=True)
    client = client_for(login(admin).access)
    assert client.get("/api/v1/users").status_code == 200  # warm: the session and its user are cached
    admin.is_staff = False
    admin.save()  # as the Django admin does it
    assert client.get("/api/v1/users").status_code == 403
