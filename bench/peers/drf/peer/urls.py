from django.urls import path
from rest_framework_simplejwt.views import TokenObtainPairView

from peer import views

urlpatterns = [
    path("api/hello", views.HelloView.as_view()),
    path("api/hello/protected", views.ProtectedHelloView.as_view()),
    path("api/hello/key", views.KeyHelloView.as_view()),
    path("api/me", views.MeView.as_view()),
    path("api/token", TokenObtainPairView.as_view()),
]
