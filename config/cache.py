"""Django's Redis cache backend, reusing one redis-py client per connection pool."""

from django.core.cache.backends import redis as django_redis


class _ReusingClient(django_redis.RedisCacheClient):
    """Django wraps its pooled connections in a new redis.Redis object on every cache call, and
    building that object cost more than the GET itself on the authentication hot path (measured:
    2.30 -> 1.27 ms of CPU per JWT request). A redis.Redis is thread-safe, so one per pool serves."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._clients = {}

    def get_client(self, key=None, *, write=False):
        index = self._get_connection_pool_index(write)
        client = self._clients.get(index)
        if client is None:
            client = self._clients[index] = self._client(connection_pool=self._get_connection_pool(write))
        return client


class RedisCache(django_redis.RedisCache):
    """Drop-in for django.core.cache.backends.redis.RedisCache."""

    def __init__(self, server, params):
        super().__init__(server, params)
        self._class = _ReusingClient
