from django.urls import path, re_path

from results import views

urlpatterns = [
    path("results/<int:task_id>", views.ResultView.as_view(), name="result"),
    re_path(
        r"^results/(?P<task_id>[0-9]+)/(?P<kind>gif|script|history)$",
        views.ResultFileView.as_view(),
        name="result-file",
    ),
]
