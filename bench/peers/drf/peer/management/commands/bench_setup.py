"""Create the benchmark's user (once) and a fresh API key; print the key as JSON for bench/peers.py."""

import json

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from rest_framework_api_key.models import APIKey


class Command(BaseCommand):
    def add_arguments(self, parser):
        parser.add_argument("--username", required=True)
        parser.add_argument("--password", required=True)
        parser.add_argument("--key-name", default="benchmark")

    def handle(self, *args, username, password, key_name, **options):
        user_model = get_user_model()
        user, created = user_model.objects.get_or_create(
            username=username, defaults={"email": f"{username}@example.com"}
        )
        if created:
            user.set_password(password)
            user.save()
        # Each server of a run has its own key name: a second server's setup must not revoke the first's key.
        APIKey.objects.filter(name=key_name).delete()
        _, key = APIKey.objects.create_key(name=key_name)
        self.stdout.write(json.dumps({"api_key": key}))
