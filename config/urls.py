from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from config import views

# Django tries the patterns in order and walks each app's list to its end before the next: the single
# routes go first, so that the cheapest requests (a health probe of the API, the hello endpoints) do not
# pay for matching some eighty patterns of the apps (a quarter of a public hello's time, profiled).
api_v1 = [
    path("", views.APIRootView.as_view(), name="api-root"),
    path("hello", views.HelloView.as_view(), name="hello"),
    path("hello/protected", views.ProtectedHelloView.as_view(), name="hello-protected"),
    path("crypto/public-key", views.PublicKeyView.as_view(), name="crypto-public-key"),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("", include("accounts.urls")),
    path("", include("apikeys.urls")),
    path("", include("posts.urls")),
    path("", include("tasks.urls")),
    path("", include("results.urls")),
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
