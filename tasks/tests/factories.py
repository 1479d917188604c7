import factory

from accounts.tests.factories import UserFactory
from tasks.models import Task


class TaskFactory(factory.django.DjangoModelFactory):
    """A task in `created` state. Runs are started through tasks.services, never by setting fields."""

    class Meta:
        model = Task

    owner = factory.SubFactory(UserFactory)
    task_name = factory.Sequence(lambda n: f"Task {n}")
