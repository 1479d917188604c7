from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from accounts.models import AuthSession, RefreshTokenRecord

pytestmark = pytest.mark.django_db


def test_prune_keeps_live_sessions_and_deletes_what_cannot_authenticate(user, login, client_for, capsys):
    live, expired, revoked_long_ago, revoked_recently = (login(user) for _ in range(4))
    long_ago = timezone.now() - timedelta(days=40)
    AuthSession.objects.filter(pk=expired.access.session_id).update(expires_at=long_ago)
    AuthSession.objects.filter(pk=revoked_long_ago.access.session_id).update(revoked_at=long_ago)
    AuthSession.objects.filter(pk=revoked_recently.access.session_id).update(revoked_at=timezone.now())
    RefreshTokenRecord.objects.filter(session_id=live.access.session_id).update(expires_at=long_ago)

    call_command("prune_auth")

    assert "Deleted 2 session(s) and 3 refresh-token record(s)." in capsys.readouterr().out
    remaining = set(AuthSession.objects.values_list("pk", flat=True))
    assert {str(pk) for pk in remaining} == {live.access.session_id, revoked_recently.access.session_id}
    assert client_for(live.access).get("/api/v1/auth/me").status_code == 200


def test_prune_deletes_security_events_past_their_retention(user, other_user, settings, capsys):
    from accounts import jobs, services
    from accounts.models import SecurityEvent

    settings.SECURITY_EVENTS_RETENTION_DAYS = 365
    now = timezone.now()
    for owner in (user, other_user):
        for age in (400, 366, 300, 0):
            SecurityEvent.objects.create(user=owner, type="login", created_at=now - timedelta(days=age))

    assert jobs.prune_auth_records() == {"sessions": 0, "refresh_tokens": 0, "security_events": 4}
    kept = SecurityEvent.objects.all()
    assert len(kept) == 4 and all(now - event.created_at < timedelta(days=365) for event in kept)
    assert SecurityEvent.objects.filter(user=other_user).count() == 2

    settings.SECURITY_EVENTS_RETENTION_DAYS = 0  # keep them forever
    SecurityEvent.objects.update(created_at=now - timedelta(days=5000))
    assert services.auth_records_prune().security_events == 0
    call_command("prune_auth")
    assert "Deleted 0 security event(s)" in capsys.readouterr().out
    assert SecurityEvent.objects.count() == 4


def test_the_beat_schedule_prunes_daily():
    from django.conf import settings

    entry = settings.CELERY_BEAT_SCHEDULE["accounts-prune-auth-records"]
    assert entry["task"] == "accounts.prune_auth_records" and entry["schedule"] == 24 * 60 * 60
    assert settings.SECURITY_EVENTS_RETENTION_DAYS == 365
