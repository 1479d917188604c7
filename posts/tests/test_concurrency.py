"""Races settled by PostgreSQL: concurrent votes, unvotes and deletions, each request on its own connection."""

import threading

import pytest
from django.db import connection
from rest_framework.test import APIClient

from posts.models import Post, Vote
from posts.tests.factories import PostFactory

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

THREADS = 20


def vote_url(post) -> str:
    return f"/api/v1/posts/{post.pk}/vote"


def run_together(calls) -> list:
    """Run the callables in threads released at the same instant; each gets its own DB connection.

    Returns each call's response status, or the exception it raised (a 500 in the test client).
    """
    barrier = threading.Barrier(len(calls))
    results = [None] * len(calls)

    def worker(index, call):
        try:
            barrier.wait(timeout=30)
            results[index] = call()
        except Exception as error:  # noqa: BLE001 (reported by the assertions below)
            results[index] = error
        finally:
            connection.close()  # this thread's connection, or the test database cannot be dropped

    threads = [threading.Thread(target=worker, args=(i, call)) for i, call in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads), "a request hung (deadlock?)"
    return results


def client(token) -> APIClient:
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return api


def test_concurrent_identical_votes_make_one_vote(user, login):
    post = PostFactory(author=user)
    token = login(user).access
    results = run_together([lambda: client(token).post(vote_url(post)).status_code] * THREADS)
    assert all(status in (200, 201) for status in results), results
    assert results.count(201) == 1, results
    assert Vote.objects.filter(post=post, user=user).count() == 1
    post.refresh_from_db()
    assert post.vote_count == 1


def test_concurrent_votes_of_different_users_all_count(user, make_user, login):
    post = PostFactory(author=user)
    tokens = [login(make_user()).access for _ in range(THREADS)]
    results = run_together([lambda token=token: client(token).post(vote_url(post)).status_code for token in tokens])
    assert results == [201] * THREADS, results
    post.refresh_from_db()
    assert post.vote_count == THREADS == Vote.objects.filter(post=post).count()
    body = client(tokens[0]).get(f"/api/v1/posts/{post.pk}").json()
    assert (body["vote_count"], body["voted"]) == (THREADS, True)


def test_concurrent_unvotes_withdraw_the_vote_once(user, login):
    post = PostFactory(author=user)
    token = login(user).access
    assert client(token).post(vote_url(post)).status_code == 201
    results = run_together([lambda: client(token).delete(vote_url(post)).status_code] * THREADS)
    assert sorted(results) == [204] + [404] * (THREADS - 1), results
    post.refresh_from_db()
    assert post.vote_count == 0 and not Vote.objects.exists()


def test_votes_and_unvotes_interleaved_keep_the_count_exact(user, make_user, login):
    post = PostFactory(author=user)
    voters = [make_user() for _ in range(THREADS)]
    tokens = [login(voter).access for voter in voters]
    for token in tokens[: THREADS // 2]:
        client(token).post(vote_url(post))
    # The first half withdraw their votes while the second half vote.
    calls = [lambda t=t: client(t).delete(vote_url(post)).status_code for t in tokens[: THREADS // 2]]
    calls += [lambda t=t: client(t).post(vote_url(post)).status_code for t in tokens[THREADS // 2 :]]
    results = run_together(calls)
    assert results == [204] * (THREADS // 2) + [201] * (THREADS // 2), results
    post.refresh_from_db()
    assert post.vote_count == THREADS // 2 == Vote.objects.filter(post=post).count()


def test_deleting_a_post_while_it_is_voted_for_is_never_a_500(user, make_user, login):
    post = PostFactory(author=user)
    author_token = login(user).access
    tokens = [login(make_user()).access for _ in range(THREADS - 1)]
    calls = [lambda t=t: client(t).post(vote_url(post)).status_code for t in tokens]
    calls.insert(THREADS // 2, lambda: client(author_token).delete(f"/api/v1/posts/{post.pk}").status_code)
    results = run_together(calls)
    assert all(isinstance(status, int) and status < 500 for status in results), results
    assert results[THREADS // 2] == 204
    assert set(results) <= {201, 204, 404}, results
    assert not Post.objects.filter(pk=post.pk).exists()
    assert not Vote.objects.exists()
