"""The object store: objects by storage key, a global resourceVersion and a
bounded history of change events (what etcd's revision history is to the real
apiserver). One lock guards everything; a condition variable on it wakes
watchers on every change, on ``drop_watches`` and on shutdown.

Stored objects are treated as immutable: writers always store a new dict, so
an event can share the object with the store without copying.
"""

import collections
import threading


class Event:
    """One change: ``type`` is ADDED, MODIFIED or DELETED; ``old`` is the
    object before the change (None for ADDED)."""
    __slots__ = ("rv", "key", "type", "obj", "old")

    def __init__(self, rv, key, type_, obj, old):
        self.rv, self.key, self.type, self.obj, self.old = rv, key, type_, obj, old


class Store:
    def __init__(self, window=10000):
        self.lock = threading.RLock()
        self.cond = threading.Condition(self.lock)
        self.rv = 100                 # current (last written) resourceVersion
        self.objects = {}             # storage key -> {(namespace, name): obj}
        self.history = collections.deque()
        self.window = max(1, window)
        self.compacted_rv = self.rv   # events with rv <= this are gone
        self.watch_epoch = 0          # bumped to close every open watch
        self.closed = False

    # -- reads (caller holds the lock or accepts a racy view) --

    def get(self, key, ns, name):
        return self.objects.get(key, {}).get((ns, name))

    def items(self, key, ns=None):
        """Objects of a storage key sorted by (namespace, name), optionally
        restricted to one namespace."""
        bucket = self.objects.get(key, {})
        keys = sorted(k for k in bucket if ns is None or k[0] == ns)
        return [bucket[k] for k in keys]

    def state_at(self, key, rv):
        """{(ns, name): obj} of a storage key as it was at resourceVersion
        ``rv``, rebuilt by undoing later history. Caller checks
        ``rv >= compacted_rv``."""
        state = dict(self.objects.get(key, {}))
        for ev in reversed(self.history):
            if ev.rv <= rv:
                break
            if ev.key != key:
                continue
            ident = (ev.obj["metadata"].get("namespace", ""), ev.obj["metadata"]["name"])
            if ev.type == "ADDED":
                state.pop(ident, None)
            else:
                state[ident] = ev.old
        return state

    def events_after(self, rv):
        """History events with resourceVersion > rv, oldest first."""
        out = []
        for ev in reversed(self.history):
            if ev.rv <= rv:
                break
            out.append(ev)
        out.reverse()
        return out

    # -- writes (caller holds the lock) --

    def next_rv(self):
        self.rv += 1
        return self.rv

    def record(self, key, type_, obj, old):
        """Store ``obj`` (whose metadata.resourceVersion is already the next
        RV) or remove it for DELETED, append the event, wake watchers."""
        meta = obj["metadata"]
        ident = (meta.get("namespace", ""), meta["name"])
        bucket = self.objects.setdefault(key, {})
        if type_ == "DELETED":
            bucket.pop(ident, None)
        else:
            bucket[ident] = obj
        self.history.append(Event(int(meta["resourceVersion"]), key, type_, obj, old))
        while len(self.history) > self.window:
            self.compacted_rv = self.history.popleft().rv
        self.cond.notify_all()

    def compact(self):
        """Forget all history (an etcd compaction at the current revision)."""
        with self.lock:
            self.history.clear()
            self.compacted_rv = self.rv
            self.cond.notify_all()

    def drop_watches(self):
        with self.lock:
            self.watch_epoch += 1
            self.cond.notify_all()

    def close(self):
        with self.lock:
            self.closed = True
            self.cond.notify_all()
