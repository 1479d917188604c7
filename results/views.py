"""Results endpoints: a run's result, its deletion, and owner-only downloads of its local files."""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.views import APIView

from config import scopes
from config.viewsets import NOT_FOUND, RespondMixin, require_id
from results import selectors, services
from results import storage as result_storage
from results.serializers import ResultDeletedSerializer, ResultSerializer


@extend_schema(tags=["results"])
class ResultView(RespondMixin, APIView):
    """The result of your task's latest finished run (404 until a run has finished)."""

    output_serializer_class = ResultSerializer
    required_scopes = {"GET": scopes.RESULTS_READ, "DELETE": scopes.RESULTS_WRITE}

    @extend_schema(responses={200: ResultSerializer, 404: NOT_FOUND})
    def get(self, request, task_id: int):
        return self.respond(selectors.result_get(owner=request.user, task_id=require_id(task_id)))

    @extend_schema(responses={200: ResultDeletedSerializer, 404: NOT_FOUND})
    def delete(self, request, task_id: int):
        """Delete the result and its files; a file the storage refuses now is retried later and listed in `warnings`."""
        task_id = require_id(task_id)
        report = services.result_delete(result=selectors.result_get(owner=request.user, task_id=task_id))
        body = {
            "message": "Result deleted."
            if not report.warnings
            else "Result deleted; some files will be deleted later.",
            "task_id": task_id,
            # A boolean as in the original system: every file of the result is gone from its storage now.
            "files_deleted": not report.warnings,
            "deleted_files": report.files_deleted,
            "database_deleted": report.database_deleted,
            "warnings": report.warnings,
        }
        return self.respond(body, serializer_class=ResultDeletedSerializer)


class _AnyAccept(BaseContentNegotiation):
    """A file is what it is: `Accept: image/gif` must not turn into a 406 from the JSON renderers."""

    def select_parser(self, request, parsers):
        return parsers[0]

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


@extend_schema(tags=["results"])
class ResultFileView(APIView):
    """Download a file of your task's result: `gif` (image/gif), `script` (Python) or `history` (JSON)."""

    content_negotiation_class = _AnyAccept
    required_scopes = {"GET": scopes.RESULTS_READ}

    @extend_schema(
        operation_id="results_file_retrieve",
        responses={(200, "application/octet-stream"): OpenApiTypes.BINARY, 302: None, 404: NOT_FOUND},
    )
    def get(self, request, task_id: str, kind: str):
        file = selectors.result_file_get(owner=request.user, task_id=require_id(task_id), kind=kind)
        return result_storage.file_response(file)
