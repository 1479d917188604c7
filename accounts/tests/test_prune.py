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
