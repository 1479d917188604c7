"""Input validation and output shape of the tasks endpoints."""

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from tasks import runner
from tasks.models import (
    AGENT_MAX_STEPS_MAX,
    AGENT_MAX_STEPS_MIN,
    KEY_PROVIDERS,
    PROVIDER_KEY_NAME_MAX_LENGTH,
    TEMPERATURE_MAX,
    TEMPERATURE_MIN,
    URL_MAX_LENGTH,
    WINDOW_HEIGHT_MAX,
    WINDOW_HEIGHT_MIN,
    WINDOW_WIDTH_MAX,
    WINDOW_WIDTH_MIN,
    ExpectedStatus,
    LLMProvider,
    ProviderKey,
    Task,
    TaskStatus,
)

TEXT_MAX_LENGTH = 10_000


class StrictFloatField(serializers.FloatField):
    """A number; `true` is not 1.0."""

    def to_internal_value(self, data):
        if isinstance(data, bool):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictBooleanField(serializers.BooleanField):
    """JSON true/false only (DRF would also take "yes", "on", 1...)."""

    default_error_messages = {"invalid": "Must be true or false."}

    def to_internal_value(self, data):
        if not isinstance(data, bool):
            self.fail("invalid")
        return data


# OUTPUT
# ------------------------------------------------------------------------------


class AgentSettingsSerializer(serializers.Serializer):
    llm_provider = serializers.CharField()
    llm_model = serializers.CharField()
    temperature = serializers.FloatField()
    provider_key_id = serializers.IntegerField(allow_null=True)
    max_steps = serializers.IntegerField()


class BrowserSettingsSerializer(serializers.Serializer):
    browser_headless_mode = serializers.BooleanField()
    window_width = serializers.IntegerField()
    window_height = serializers.IntegerField()


class ProgressSerializer(serializers.Serializer):
    done = serializers.IntegerField(source="progress_done")
    total = serializers.IntegerField(source="progress_total")


class TaskSerializer(serializers.ModelSerializer):
    """A task as API.md shows it, plus `run` (the number of the current or last run)."""

    agent_settings = AgentSettingsSerializer(source="*", read_only=True)
    browser_settings = BrowserSettingsSerializer(source="*", read_only=True)
    progress = ProgressSerializer(source="*", read_only=True)
    run = serializers.IntegerField(source="run_number", read_only=True)

    class Meta:
        model = Task
        fields = [
            "id",
            "task_name",
            "status",
            "agent_settings",
            "browser_settings",
            "instruction",
            "description",
            "start_url",
            "steps",
            "search_input_input",
            "search_input_action",
            "expected_outcome",
            "expected_status",
            "progress",
            "error",
            "run",
            "created_at",
            "updated_at",
            "queued_at",
            "started_at",
            "finished_at",
        ]
        read_only_fields = fields


class ProviderKeySerializer(serializers.ModelSerializer):
    """A stored provider key as the API shows it: never the key, only its last 4 characters (`hint`)."""

    class Meta:
        model = ProviderKey
        fields = ["id", "provider", "name", "base_url", "hint", "created_at", "last_used"]
        read_only_fields = fields


# INPUT
# ------------------------------------------------------------------------------


class TaskCreateSerializer(serializers.Serializer):
    task_name = serializers.CharField(max_length=200)


class TaskListQuerySerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=TaskStatus.choices, required=False)


class AgentSettingsUpdateSerializer(serializers.Serializer):
    llm_provider = serializers.ChoiceField(choices=LLMProvider.choices, required=False)
    llm_model = serializers.CharField(max_length=200, allow_blank=True, required=False)
    temperature = StrictFloatField(min_value=TEMPERATURE_MIN, max_value=TEMPERATURE_MAX, required=False)
    provider_key_id = serializers.IntegerField(
        min_value=1,
        allow_null=True,
        required=False,
        help_text="One of your provider keys; null: your newest key of the provider, else the server's.",
    )
    max_steps = serializers.IntegerField(
        min_value=AGENT_MAX_STEPS_MIN,
        max_value=AGENT_MAX_STEPS_MAX,
        required=False,
        help_text="The most actions the model may take in a run.",
    )


class BrowserSettingsUpdateSerializer(serializers.Serializer):
    browser_headless_mode = StrictBooleanField(required=False)
    window_width = serializers.IntegerField(min_value=WINDOW_WIDTH_MIN, max_value=WINDOW_WIDTH_MAX, required=False)
    window_height = serializers.IntegerField(min_value=WINDOW_HEIGHT_MIN, max_value=WINDOW_HEIGHT_MAX, required=False)


class StepSerializer(serializers.Serializer):
    """One browser action, for the schema: `tasks.services.task_plan` validates the list (docs/runner.md)."""

    action = serializers.ChoiceField(choices=runner.ACTIONS)
    url = serializers.CharField(required=False)
    selector = serializers.CharField(required=False)
    text = serializers.CharField(required=False)
    key = serializers.CharField(required=False)
    timeout_ms = serializers.IntegerField(required=False)


@extend_schema_field(StepSerializer(many=True))
class StepsField(serializers.JSONField):
    """A list of steps, passed on as the client sent it (the service validates and normalises it)."""


class TaskInitiateSerializer(serializers.Serializer):
    """What the run does. Each initiate defines the whole run: omitted fields take their defaults.

    The steps, and the plan built from the fields when there are none, are validated by the
    service, the one place that knows the runner's rules.
    """

    instruction = serializers.CharField(max_length=TEXT_MAX_LENGTH)
    description = serializers.CharField(max_length=TEXT_MAX_LENGTH, allow_blank=True, default="")
    start_url = serializers.CharField(max_length=URL_MAX_LENGTH, allow_blank=True, default="", trim_whitespace=True)
    steps = StepsField(required=False, allow_null=True, default=list, help_text="Up to 100 browser actions.")
    search_input_input = serializers.CharField(
        max_length=runner.MAX_TEXT_LENGTH, allow_blank=True, default="", trim_whitespace=False
    )
    search_input_action = serializers.CharField(max_length=runner.MAX_ACTION_LENGTH, allow_blank=True, default="")
    expected_outcome = serializers.CharField(max_length=runner.MAX_TEXT_LENGTH, allow_blank=True, default="")
    expected_status = serializers.ChoiceField(choices=ExpectedStatus.choices, default=ExpectedStatus.SUCCESS)


class ProviderKeyCreateSerializer(serializers.Serializer):
    """A key to store. The service decides the rules between fields (exactly one key, base_url for which
    provider, the egress policy): they are its rules whoever calls it."""

    provider = serializers.ChoiceField(choices=KEY_PROVIDERS)
    name = serializers.CharField(max_length=PROVIDER_KEY_NAME_MAX_LENGTH, allow_blank=True, default="")
    base_url = serializers.CharField(
        max_length=URL_MAX_LENGTH,
        allow_blank=True,
        default="",
        help_text="Required for openai_compatible (e.g. http://ollama.internal:11434/v1); http(s) only.",
    )
    api_key = serializers.CharField(
        required=False, trim_whitespace=False, write_only=True, max_length=10_000, help_text="The key in plain (TLS)."
    )
    encrypted_api_key = serializers.CharField(
        required=False,
        write_only=True,
        max_length=10_000,
        help_text="base64 of the key encrypted with RSA-OAEP-SHA256 and the key of GET /api/v1/crypto/public-key.",
    )
    kid = serializers.CharField(
        required=False, allow_null=True, default=None, max_length=64, help_text="The public key's kid (optional)."
    )
