"""Routes at the site's root under /.well-known/ (RFC 8615), outside the versioned API: where verifiers look."""

from django.urls import path

from accounts import views

urlpatterns = [
    path("jwks.json", views.JWKSView.as_view(), name="jwks"),
]
