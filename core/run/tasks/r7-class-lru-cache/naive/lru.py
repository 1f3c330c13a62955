class LRUCache:
    def __init__(self, capacity, on_evict=None):
        self.capacity = capacity
        self.data = {}

    def get(self, key, default=None):
        return self.data.get(key, default)

    def put(self, key, value):
        if key not in self.data and len(self.data) >= self.capacity:
            del self.data[next(iter(self.data))]
        self.data[key] = value

    def __len__(self):
        return len(self.data)

    def __contains__(self, key):
        return key in self.data

    def keys(self):
        return list(self.data)
