"""A storage backend for tests: local files whose deletion fails while `failing` is set.

It stands in for a file store that is down (the Cloudinary case): Django's storage API is the
boundary the results app talks to, so the app's own code runs unchanged against it.
"""

from django.core.files.storage import FileSystemStorage


class FlakyStorage(FileSystemStorage):
    failing = False

    def delete(self, name):
        if FlakyStorage.failing:
            raise ConnectionError("file store unreachable")
        super().delete(name)
