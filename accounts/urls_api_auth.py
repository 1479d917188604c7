"""/api-auth/: the browsable API's log-in and log-out, in DRF's namespace so that its pages link to them."""

from django.urls import path

from accounts import views

app_name = "rest_framework"
urlpatterns = [
    path("login/", views.BrowsableAPILoginView.as_view(), name="login"),
    path("logout/", views.BrowsableAPILogoutView.as_view(), name="logout"),
]
