from rest_framework.routers import SimpleRouter

from apikeys import views

router = SimpleRouter(trailing_slash=False)
router.register("auth/api-keys", views.APIKeyViewSet, basename="api-key")

urlpatterns = router.urls
