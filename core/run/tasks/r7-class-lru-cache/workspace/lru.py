"""A least-recently-used cache (see TASK.md)."""


class LRUCache:
    def __init__(self, capacity, on_evict=None):
        raise NotImplementedError
