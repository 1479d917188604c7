"""Output shape of the results endpoints."""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from results import storage as result_storage
from results.models import FileKind, Result


class UsageSerializer(serializers.Serializer):
    model_calls = serializers.IntegerField()
    input_tokens = serializers.IntegerField()
    output_tokens = serializers.IntegerField()


class ResultSerializer(serializers.ModelSerializer):
    """A run's result as API.md shows it, plus `run`, `expected_status`, `history_url`, `warnings` and `usage`."""

    task_id = serializers.IntegerField(read_only=True)
    run = serializers.IntegerField(source="run_number", read_only=True)
    result_gif = serializers.SerializerMethodField(help_text="URL of the animated GIF of the run (null if none).")
    result_json_url = serializers.SerializerMethodField(help_text="URL of the Python (Playwright) replay script.")
    history_url = serializers.SerializerMethodField(help_text="URL of the step history as a JSON file.")
    usage = UsageSerializer(
        read_only=True, allow_null=True, help_text="An agent run's model usage; null for other runs."
    )

    class Meta:
        model = Result
        fields = [
            "task_id",
            "run",
            "actual_status",
            "expected_status",
            "passed",
            "result_gif",
            "result_json_url",
            "history_url",
            "history",
            "warnings",
            "usage",
            "created_at",
        ]
        read_only_fields = fields

    def _url(self, result: Result, kind: str) -> str | None:
        # `files` is prefetched by the selector: no query per URL.
        for file in result.files.all():
            if file.kind == kind:
                return result_storage.file_url(
                    request=self.context.get("request"),
                    task_id=result.task_id,
                    kind=kind,
                    alias=file.storage,
                    name=file.name,
                )
        return None

    @extend_schema_field(OpenApiTypes.URI)
    def get_result_gif(self, result) -> str | None:
        return self._url(result, FileKind.GIF)

    @extend_schema_field(OpenApiTypes.URI)
    def get_result_json_url(self, result) -> str | None:
        return self._url(result, FileKind.SCRIPT)

    @extend_schema_field(OpenApiTypes.URI)
    def get_history_url(self, result) -> str | None:
        return self._url(result, FileKind.HISTORY)


class ResultDeletedSerializer(serializers.Serializer):
    message = serializers.CharField()
    task_id = serializers.IntegerField()
    files_deleted = serializers.BooleanField(
        help_text="Every file of the result is deleted from storage now (false: `warnings` says which one waits)."
    )
    deleted_files = serializers.ListField(
        child=serializers.CharField(), help_text='Kinds of file deleted from storage now: "gif", "script", "history".'
    )
    database_deleted = serializers.BooleanField()
    warnings = serializers.ListField(child=serializers.CharField())
