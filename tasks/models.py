"""Browser tasks: what to check, how to run the browser, and the state of the current run."""

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from config.models import TimeStampedModel

TEMPERATURE_MIN, TEMPERATURE_MAX = 0.0, 2.0
WINDOW_WIDTH_MIN, WINDOW_WIDTH_MAX = 320, 3840
WINDOW_HEIGHT_MIN, WINDOW_HEIGHT_MAX = 240, 2160
URL_MAX_LENGTH = 2048


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
    # The runner is deterministic (explicit steps, or a plan from the task's fields); no
    # language model is called yet, so "none" is the only provider that is honest to offer.
    NONE = "none", "None (deterministic runner)"


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
