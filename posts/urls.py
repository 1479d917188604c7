from rest_framework.routers import SimpleRouter

from posts import views

router = SimpleRouter(trailing_slash=False)
router.register("posts", views.PostViewSet, basename="post")

urlpatterns = router.urls
