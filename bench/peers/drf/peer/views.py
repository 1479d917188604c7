"""The peer's endpoints, written as the DRF, simplejwt and drf-api-key docs show them."""

from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework_api_key.permissions import HasAPIKey


class HelloView(APIView):
    permission_classes = [AllowAny]

    def get(self, request):
        return Response({"message": "Hello, world!"})


class ProtectedHelloView(APIView):
    permission_classes = [IsAuthenticated]

    def get(self, request):
        return Response({"message": f"Hello, {request.user.username}!"})


class KeyHelloView(APIView):
    # drf-api-key's keys belong to no user: the permission checks the key and nothing else.
    permission_classes = [HasAPIKey]

    def get(self, request):
        return Response({"message": "Hello, API key holder!"})


class MeView(APIView):
    permission_classes = [IsAuthenticated]

    def get(self, request):
        user = request.user
        return Response({"id": user.id, "username": user.username, "email": user.email})
