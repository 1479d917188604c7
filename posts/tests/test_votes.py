"""Voting over HTTP and in the services: 201 then 200, unvote, counts, and the races the database settles."""

import pytest
from django.db import IntegrityError, transaction

from config.errors import NotFound
from posts import services
from posts.models import Post, Vote
from posts.tests.factories import PostFactory

pytestmark = pytest.mark.django_db


def vote_url(post_or_id) -> str:
    return f"/api/v1/posts/{getattr(post_or_id, 'pk', post_or_id)}/vote"


def test_first_vote_is_201_with_the_updated_post(auth_client, user, other_user):
    post = PostFactory(author=other_user)
    response = auth_client.post(vote_url(post))
    assert response.status_code == 201
    body = response.json()
    assert (body["id"], body["vote_count"], body["voted"]) == (post.pk, 1, True)
    assert Vote.objects.filter(post=post, user=user).count() == 1


def test_voting_again_is_200_and_changes_nothing(auth_client, user, other_user):
    post = PostFactory(author=other_user)
    assert auth_client.post(vote_url(post)).status_code == 201
    again = auth_client.post(vote_url(post))
    assert again.status_code == 200
    assert (again.json()["vote_count"], again.json()["voted"]) == (1, True)
    assert Vote.objects.filter(post=post).count() == 1
    post.refresh_from_db()
    assert post.vote_count == 1


def test_authors_may_vote_for_their_own_post(auth_client, user):
    post = PostFactory(author=user)
    assert auth_client.post(vote_url(post)).status_code == 201


def test_votes_of_different_users_add_up(user, other_user, make_user, login, client_for):
    post = PostFactory(author=user)
    voters = [user, other_user, make_user()]
    for n, voter in enumerate(voters, start=1):
        response = client_for(login(voter).access).post(vote_url(post))
        assert response.status_code == 201
        assert response.json()["vote_count"] == n
    post.refresh_from_db()
    assert post.vote_count == Vote.objects.filter(post=post).count() == 3


def test_unvote_is_204_and_takes_the_vote_back(auth_client, user, other_user):
    post = PostFactory(author=other_user)
    services.post_vote(post=post, user=user)
    services.post_vote(post=post, user=other_user)
    assert auth_client.delete(vote_url(post)).status_code == 204
    post.refresh_from_db()
    assert post.vote_count == 1
    assert not Vote.objects.filter(post=post, user=user).exists()
    assert Vote.objects.filter(post=post, user=other_user).exists()  # only the caller's vote went
    body = auth_client.get(f"/api/v1/posts/{post.pk}").json()
    assert (body["vote_count"], body["voted"]) == (1, False)


def test_unvote_without_a_vote_is_404(auth_client, user, other_user):
    post = PostFactory(author=other_user)
    services.post_vote(post=post, user=other_user)  # someone else's vote is not yours to withdraw
    response = auth_client.delete(vote_url(post))
    assert response.status_code == 404
    assert response.json() == {"detail": "You have not voted for this post.", "code": "not_found"}
    post.refresh_from_db()
    assert post.vote_count == 1


def test_unvote_twice_is_204_then_404(auth_client, user):
    post = PostFactory(author=user)
    services.post_vote(post=post, user=user)
    assert auth_client.delete(vote_url(post)).status_code == 204
    assert auth_client.delete(vote_url(post)).status_code == 404
    post.refresh_from_db()
    assert post.vote_count == 0


def test_vote_then_unvote_then_vote_again_is_201(auth_client, user):
    post = PostFactory(author=user)
    assert auth_client.post(vote_url(post)).status_code == 201
    assert auth_client.delete(vote_url(post)).status_code == 204
    assert auth_client.post(vote_url(post)).status_code == 201


@pytest.mark.parametrize("method", ["post", "delete"])
def test_vote_on_a_missing_post_is_404(auth_client, method):
    assert getattr(auth_client, method)(vote_url(424242)).status_code == 404
    assert not Vote.objects.exists()


@pytest.mark.parametrize("method", ["get", "put", "patch"])
def test_vote_endpoint_allows_only_post_and_delete(auth_client, user, method):
    post = PostFactory(author=user)
    assert getattr(auth_client, method)(vote_url(post)).status_code == 405


def test_a_vote_body_cannot_vote_for_someone_else(auth_client, user, other_user):
    post = PostFactory(author=user)
    response = auth_client.post(vote_url(post), {"user": other_user.pk, "user_id": other_user.pk}, format="json")
    assert response.status_code == 201
    assert list(Vote.objects.values_list("user_id", flat=True)) == [user.pk]


# Services ------------------------------------------------------------------------------


def test_post_vote_returns_whether_it_cast_the_vote(user):
    post = PostFactory()
    assert services.post_vote(post=post, user=user) is True
    assert services.post_vote(post=post, user=user) is False
    post.refresh_from_db()
    assert post.vote_count == 1


def test_the_database_refuses_a_second_vote_of_the_same_user(user):
    post = PostFactory()
    Vote.objects.create(post=post, user=user)
    with pytest.raises(IntegrityError), transaction.atomic():
        Vote.objects.create(post=post, user=user)


def test_post_vote_answers_already_voted_when_the_insert_loses_the_race(user):
    # The row a concurrent request committed between our view's read and our INSERT:
    # the service never looks before inserting, so this is exactly the race's shape.
    post = PostFactory()
    Vote.objects.create(post=post, user=user)
    assert services.post_vote(post=post, user=user) is False
    post.refresh_from_db()
    assert post.vote_count == 0  # the count is the vote service's; the stray row above bypassed it


def test_post_vote_on_a_post_deleted_meanwhile_is_not_found(user):
    post = PostFactory()
    Post.objects.filter(pk=post.pk).delete()  # gone after the view fetched it
    with pytest.raises(NotFound):
        services.post_vote(post=post, user=user)
    assert not Vote.objects.exists()


def test_post_unvote_without_a_vote_raises_not_found(user):
    post = PostFactory()
    with pytest.raises(NotFound):
        services.post_unvote(post=post, user=user)


def test_vote_counts_recompute_repairs_drifted_counts(user, other_user):
    post, untouched = PostFactory(), PostFactory()
    services.post_vote(post=post, user=user)
    services.post_vote(post=post, user=other_user)
    Post.objects.filter(pk__in=[post.pk, untouched.pk]).update(vote_count=7)
    assert services.post_vote_counts_recompute() == 2
    post.refresh_from_db()
    untouched.refresh_from_db()
    assert (post.vote_count, untouched.vote_count) == (2, 0)


def test_content_limits_hold_in_the_service_and_the_database(user):
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError):
        services.post_create(author=user, content="")
    with pytest.raises(ValidationError):
        services.post_create(author=user, content="x" * 10_001)
    with pytest.raises(IntegrityError), transaction.atomic():
        Post.objects.create(author=user, content="")  # bypassing the service: the check constraint
    assert services.post_create(author=user, content="x" * 10_000).pk
