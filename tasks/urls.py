from rest_framework.routers import SimpleRouter

from tasks import views

router = SimpleRouter(trailing_slash=False)
router.register("tasks", views.TaskViewSet, basename="task")
router.register("provider-keys", views.ProviderKeyViewSet, basename="provider-key")

urlpatterns = router.urls
