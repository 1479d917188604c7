from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from config import views

api_v1 = [
    path("", views.APIRootView.as_view(), name="api-root"),
    path("", include("accounts.urls")),
    path("", include("apikeys.urls")),
    path("", include("posts.urls")),
    path("", include("tasks.urls")),
    path("", include("results.urls")),
    path("crypto/public-key", views.PublicKeyView.as_view(), name="crypto-public-key"),
    path("hello", views.HelloView.as_view(), name="hello"),
    path("hello/protected", views.ProtectedHelloView.as_view(), name="hello-protected"),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
]

handler404 = views.not_found

urlpatterns = [
    path("api/v1/", include(api_v1)),
    path("api", views.APIIndexView.as_view(), name="api-index"),
    path("api-auth/", include("accounts.urls_api_auth")),
    path(".well-known/", include("accounts.urls_well_known")),
    path("health", views.HealthView.as_view(), name="health"),
    path("health/live", views.LivenessView.as_view(), name="health-live"),
    path("docs", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
    path("redoc", SpectacularRedocView.as_view(url_name="schema"), name="redoc"),
    path("admin/", admin.site.urls),
]
