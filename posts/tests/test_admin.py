"""Admin pages for posts and votes; their changes go through the services."""

import pytest

from posts import services
from posts.models import Post, Vote
from posts.tests.factories import PostFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client, make_user):
    client.force_login(make_user("root", is_staff=True, is_superuser=True))
    return client


def test_changelist_shows_vote_counts_and_searches_content_and_author(admin_client, user, other_user):
    liked = PostFactory(author=user, content="a post about cursors")
    PostFactory(author=other_user, content="something else")
    services.post_vote(post=liked, user=other_user)

    page = admin_client.get("/admin/posts/post/")
    assert page.status_code == 200
    assert "vote_count" in page.content.decode() or "Vote count" in page.content.decode()

    by_content = admin_client.get("/admin/posts/post/", {"q": "cursors"})
    assert list(by_content.context["cl"].result_list) == [liked]
    by_author = admin_client.get("/admin/posts/post/", {"q": "BOB"})
    assert [p.author for p in by_author.context["cl"].result_list] == [other_user]
    assert by_content.context["cl"].result_list[0].vote_count == 1


def test_admin_edit_and_delete_use_the_services(admin_client, user, other_user):
    post = PostFactory(author=user, content="before")
    services.post_vote(post=post, user=other_user)
    response = admin_client.post(f"/admin/posts/post/{post.pk}/change/", {"content": "moderated"})
    assert response.status_code == 302, response.content
    post.refresh_from_db()
    assert (post.content, post.author, post.vote_count) == ("moderated", user, 1)
    response = admin_client.post(f"/admin/posts/post/{post.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert not Post.objects.exists() and not Vote.objects.exists()


def test_admin_can_add_a_post_for_an_author(admin_client, user):
    response = admin_client.post("/admin/posts/post/add/", {"author": user.pk, "content": "from the admin"})
    assert response.status_code == 302, response.content
    assert Post.objects.get().author == user


def test_withdrawing_a_vote_in_the_admin_keeps_the_count(admin_client, user, other_user):
    post = PostFactory(author=user)
    services.post_vote(post=post, user=user)
    services.post_vote(post=post, user=other_user)
    vote = Vote.objects.get(user=other_user)
    assert admin_client.get("/admin/posts/vote/").status_code == 200
    response = admin_client.post(
        "/admin/posts/vote/", {"action": "delete_selected", "_selected_action": [vote.pk], "post": "yes"}
    )
    assert response.status_code == 302
    post.refresh_from_db()
    assert post.vote_count == 1 == Vote.objects.count()


def test_recount_action_repairs_counts(admin_client, user, other_user):
    post = PostFactory(author=user)
    services.post_vote(post=post, user=other_user)
    Post.objects.filter(pk=post.pk).update(vote_count=5)
    response = admin_client.post("/admin/posts/post/", {"action": "recount_votes", "_selected_action": [post.pk]})
    assert response.status_code == 302
    post.refresh_from_db()
    assert post.vote_count == 1


def test_votes_cannot_be_added_or_edited_in_the_admin(admin_client, user, other_user):
    post = PostFactory(author=user)
    services.post_vote(post=post, user=other_user)
    assert admin_client.get("/admin/posts/vote/add/").status_code == 403
    vote = Vote.objects.get()
    response = admin_client.post(f"/admin/posts/vote/{vote.pk}/change/", {"user": user.pk, "post": post.pk})
    assert response.status_code == 403
