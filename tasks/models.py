"""Browser tasks: what to check, how to run the browser, and the state of the current run."""

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from config.models import TimeStampedModel

TEMPERATURE_MIN, TEMPERATURE_MAX = 0.0, 2.0
WINDOW_WIDTH_MIN, WINDOW_WIDTH_MAX = 320, 3840
WINDOW_HEIGHT_MIN, WINDOW_HEIGHT_MAX = 240, 2160
URL_MAX_LENGTH = 2048
# How many actions an agent run may take (agent_settings.max_steps).
AGENT_MAX_STEPS_MIN, AGENT_MAX_STEPS_MAX, AGENT_MAX_STEPS_DEFAULT = 1, 100, 25
PROVIDER_KEY_NAME_MAX_LENGTH = 100


class TaskStatus(models.TextChoices):
    CREATED = "created"
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


# A run is in flight while queued or running: settings are frozen and initiate answers 409.
ACTIVE_STATUSES = (TaskStatus.QUEUED, TaskStatus.RUNNING)
# States a new run may start from.
INITIABLE_STATUSES = (TaskStatus.CREATED, TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED)


class LLMProvider(models.TextChoices):
    # "none": the deterministic runner (explicit steps, or a plan from the task's fields). The others:
    # a language model chooses each action (docs/provider-keys.md); "openai_compatible" is any server
    # speaking the OpenAI Chat Completions API (Ollama, vLLM, LiteLLM, Azure) at a key's base_url.
    NONE = "none", "None (deterministic runner)"
    OPENAI = "openai", "OpenAI"
    ANTHROPIC = "anthropic", "Anthropic"
    OPENAI_COMPATIBLE = "openai_compatible", "OpenAI-compatible server"


# The providers a key can be stored for: every one but "none".
KEY_PROVIDERS = [(value, label) for value, label in LLMProvider.choices if value != LLMProvider.NONE]


class ExpectedStatus(models.TextChoices):
    SUCCESS = "success"
    FAILURE = "failure"


class Task(TimeStampedModel):
    """A browser check owned by one user, and the state of its latest run."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="tasks", db_index=False)
    task_name = models.CharField(max_length=200)
    status = models.CharField(max_length=16, choices=TaskStatus.choices, default=TaskStatus.CREATED)

    # Agent settings.
    llm_provider = models.CharField(max_length=32, choices=LLMProvider.choices, default=LLMProvider.NONE)
    llm_model = models.CharField(max_length=200, blank=True)
    temperature = models.FloatField(
        default=0.0, validators=[MinValueValidator(TEMPERATURE_MIN), MaxValueValidator(TEMPERATURE_MAX)]
    )
    # Which of the owner's ProviderKeys the agent uses (NULL: the newest of the provider, else the
    # server's). Deliberately not a foreign key: a deleted key must make the next initiate fail with
    # 400, not silently fall back to another key (SET_NULL) or delete the task (CASCADE).
    provider_key_id = models.PositiveBigIntegerField(null=True, blank=True)
    max_steps = models.PositiveSmallIntegerField(
        default=AGENT_MAX_STEPS_DEFAULT,
        validators=[MinValueValidator(AGENT_MAX_STEPS_MIN), MaxValueValidator(AGENT_MAX_STEPS_MAX)],
    )

    # Browser settings.
    browser_headless_mode = models.BooleanField(default=True)
    window_width = models.PositiveIntegerField(
        default=1280, validators=[MinValueValidator(WINDOW_WIDTH_MIN), MaxValueValidator(WINDOW_WIDTH_MAX)]
    )
    window_height = models.PositiveIntegerField(
        default=720, validators=[MinValueValidator(WINDOW_HEIGHT_MIN), MaxValueValidator(WINDOW_HEIGHT_MAX)]
    )

    # What the run does, set by each initiate.
    instruction = models.TextField(blank=True)
    description = models.TextField(blank=True)
    start_url = models.CharField(max_length=URL_MAX_LENGTH, blank=True)
    steps = models.JSONField(default=list, blank=True)
    search_input_input = models.CharField(max_length=1000, blank=True)
    search_input_action = models.CharField(max_length=200, blank=True)
    expected_outcome = models.TextField(blank=True)
    expected_status = models.CharField(max_length=8, choices=ExpectedStatus.choices, default=ExpectedStatus.SUCCESS)

    # The current run. `run_number` grows with every initiate and `attempt` with every
    # worker that starts the run; a job carries (task id, run number) and a worker writes
    # only while (run_number, attempt) is still its own, so a duplicate or late message,
    # or a worker presumed dead, can never overwrite another run.
    run_number = models.PositiveIntegerField(default=0)
    attempt = models.PositiveIntegerField(default=0)
    progress_done = models.PositiveIntegerField(default=0)
    progress_total = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    queued_at = models.DateTimeField(null=True, blank=True)
    # When the run was handed to the workers: it took one of its owner's TASKS_DISPATCH_PER_USER
    # slots. NULL while queued means held back for fairness (tasks.services.scheduling); the
    # queue timeout counts from here, not from `queued_at`, so time spent held is not a worker's fault.
    dispatched_at = models.DateTimeField(null=True, blank=True)
    # When the run's message was last sent to the broker (re-sent if no worker took it); NULL while held.
    enqueued_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            # The list, newest first, with or without ?status=.
            models.Index(fields=["owner", "-created_at", "-id"], name="tasks_task_owner_newest_idx"),
            models.Index(fields=["owner", "status", "-created_at"], name="tasks_task_owner_status_idx"),
            # The sweeper looks only at runs in flight: a small partial index.
            models.Index(
                fields=["status", "heartbeat_at"],
                name="tasks_task_in_flight_idx",
                condition=models.Q(status__in=["queued", "running"]),
            ),
            # A user's held runs, oldest first: the hand-off sends the next one when a slot frees.
            models.Index(
                fields=["owner", "queued_at", "id"],
                name="tasks_task_held_idx",
                condition=models.Q(status="queued", enqueued_at__isnull=True),
            ),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(temperature__gte=TEMPERATURE_MIN, temperature__lte=TEMPERATURE_MAX),
                name="tasks_task_temperature_range",
            ),
            models.CheckConstraint(
                condition=models.Q(window_width__gte=WINDOW_WIDTH_MIN, window_width__lte=WINDOW_WIDTH_MAX),
                name="tasks_task_window_width_range",
            ),
            models.CheckConstraint(
                condition=models.Q(window_height__gte=WINDOW_HEIGHT_MIN, window_height__lte=WINDOW_HEIGHT_MAX),
                name="tasks_task_window_height_range",
            ),
            models.CheckConstraint(condition=models.Q(status__in=TaskStatus.values), name="tasks_task_status_valid"),
            models.CheckConstraint(
                condition=models.Q(max_steps__gte=AGENT_MAX_STEPS_MIN, max_steps__lte=AGENT_MAX_STEPS_MAX),
                name="tasks_task_max_steps_range",
            ),
        ]

    def __str__(self):
        return f"#{self.pk} {self.task_name}"

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE_STATUSES


class RunCharge(models.Model):
    """One run its owner queued, counted against TASKS_DAILY_RUNS_PER_USER for the 24 hours after `charged_at`."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+", db_index=False)
    # SET_NULL, not CASCADE: deleting the task must not give the runs back (create, run, delete, repeat).
    task = models.ForeignKey(Task, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    run_number = models.PositiveIntegerField()
    # Only a timestamp (no TimeStampedModel): a charge is written once and never updated.
    charged_at = models.DateTimeField()

    class Meta:
        ordering = ["-charged_at", "-id"]
        indexes = [
            # The quota check: the owner's charges in the last 24 hours (an index-only count).
            models.Index(fields=["owner", "charged_at"], name="tasks_runcharge_owner_idx"),
            # The sweeper deletes the charges that left the window.
            models.Index(fields=["charged_at"], name="tasks_runcharge_charged_idx"),
        ]

    def __str__(self):
        return f"run {self.run_number} of task {self.task_id} at {self.charged_at:%Y-%m-%d %H:%M:%S}"


class ProviderKey(TimeStampedModel):
    """A user's API key for a language-model provider, sealed (config.crypto); never the plaintext."""

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="provider_keys", db_index=False
    )
    provider = models.CharField(max_length=32, choices=KEY_PROVIDERS)
    name = models.CharField(max_length=PROVIDER_KEY_NAME_MAX_LENGTH, blank=True)
    # Where the provider's API is (required for openai_compatible); checked against the egress policy.
    base_url = models.CharField(max_length=URL_MAX_LENGTH, blank=True)
    # The key's last 4 characters, to tell keys apart (empty for a key too short to spare them).
    hint = models.CharField(max_length=4, blank=True)
    # The envelope (config.crypto.Sealed): which RSA key wraps the data key, the wrapped data key,
    # and the AES-GCM nonce and ciphertext of the provider key.
    kid = models.CharField(max_length=32)
    wrapped_key = models.BinaryField()
    nonce = models.BinaryField()
    ciphertext = models.BinaryField()
    # Written at most once a minute (tasks.services.provider_keys).
    last_used = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            # The list, newest first.
            models.Index(fields=["owner", "-created_at", "-id"], name="tasks_providerkey_owner_idx"),
            # A run with no key named takes the owner's newest key of the provider.
            models.Index(fields=["owner", "provider", "-created_at"], name="tasks_providerkey_newest_idx"),
            # Re-encryption finds the rows still wrapped by an older RSA key.
            models.Index(fields=["kid"], name="tasks_providerkey_kid_idx"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(provider__in=[value for value, _ in KEY_PROVIDERS]),
                name="tasks_providerkey_provider_valid",
            ),
        ]

    def __str__(self):
        label = self.name or self.get_provider_display()
        return f"{label} (…{self.hint})" if self.hint else label
