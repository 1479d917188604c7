import factory

from accounts.tests.factories import UserFactory
from apikeys import services
from apikeys.models import APIKey


class APIKeyFactory(factory.django.DjangoModelFactory):
    """Keys made by the real service (so hashes and prefixes are genuine); the plaintext is on `.plaintext`."""

    class Meta:
        model = APIKey

    owner = factory.SubFactory(UserFactory)
    name = factory.Sequence(lambda n: f"key {n}")
    expires_days = None

    @classmethod
    def _create(cls, model_class, *, owner, name, expires_days=None, **kwargs):
        key, plaintext = services.api_key_create(user=owner, name=name, expires_days=expires_days)
        key.plaintext = plaintext
        return key
