#!/usr/bin/env python3
"""Doorman's Kubernetes API test server (python3 standard library only).

An HTTPS server that speaks enough of the Kubernetes API for the real kubectl
and for Doorman's controller: discovery, OpenAPI v3 stubs, built-in kinds and
CRDs, resourceVersion/generation semantics, four patch types, the status
subresource, selectors, pagination, watches with bookmarks and 410 Gone, and a
plain-HTTP admin port for fault injection and request introspection.

    python3 apiserver.py --port 0 --gen-certs /tmp/sim --admin-port 0

prints ``LISTENING 127.0.0.1:PORT`` (then ``ADMIN 127.0.0.1:PORT`` and
``KUBECONFIG /tmp/sim/kubeconfig``) on stdout. See README.md.
"""

import argparse
import base64
import json
import os
import secrets
import select
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import traceback
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from kubesim import errors as E  # noqa: E402
from kubesim.api import Api, WatchFilter  # noqa: E402
from kubesim.protobuf import decode_object  # noqa: E402
from kubesim.registry import SERVER_VERSION, Registry, present, to_table  # noqa: E402
from kubesim.store import Store  # noqa: E402

PUBLIC_PATHS = {"/healthz", "/livez", "/readyz"}
MAX_BODY = 16 * 1024 * 1024
_REASONS = {400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound",
            409: "Conflict", 410: "Expired", 429: "TooManyRequests", 500: "InternalError",
            503: "ServiceUnavailable", 504: "Timeout"}


# --------------------------------------------------------------------------
# Fault injection and the request log (shared with the admin port)

class Faults:
    """Injected failures and latency. ``take`` consumes one matching
    fail-next-N rule per request."""

    def __init__(self):
        self.lock = threading.Lock()
        self.rules = []          # dicts: count, code, retryAfter, match, method
        self.latency_ms = 0
        self.latency_ua = ""     # only requests whose User-Agent contains this ("" = all)
        self.abrupt_epochs = set()

    def add_rule(self, spec):
        rule = {"count": int(spec.get("count", 1)), "code": int(spec.get("code", 500)),
                "retryAfter": spec.get("retryAfter"), "match": spec.get("match") or "",
                "method": (spec.get("method") or "").upper(),
                "message": spec.get("message") or ""}
        with self.lock:
            self.rules.append(rule)
        return rule

    def take(self, method, target):
        with self.lock:
            for rule in self.rules:
                if rule["count"] <= 0:
                    continue
                if rule["match"] and rule["match"] not in target:
                    continue
                if rule["method"] and rule["method"] != method:
                    continue
                rule["count"] -= 1
                self.rules = [r for r in self.rules if r["count"] > 0]
                return dict(rule)
        return None

    def snapshot(self):
        with self.lock:
            return {"fail": [dict(r) for r in self.rules], "latencyMs": self.latency_ms,
                    "latencyUserAgent": self.latency_ua}

    def clear(self):
        with self.lock:
            self.rules = []
            self.latency_ms = 0
            self.latency_ua = ""

    def remove(self, match):
        """Drops the rules whose match is exactly `match`; returns how many."""
        with self.lock:
            kept = [r for r in self.rules if r["match"] != match]
            removed, self.rules = len(self.rules) - len(kept), kept
        return removed


class RequestLog:
    """Every API request: appended when it starts (so open watches show up),
    completed with status and duration when it ends."""

    def __init__(self, limit=200000):
        self.lock = threading.Lock()
        self.entries = []
        self.seq = 0
        self.limit = limit

    def start(self, method, path, query, headers):
        with self.lock:
            self.seq += 1
            entry = {"seq": self.seq, "time": time.time(), "method": method, "path": path,
                     "query": query, "userAgent": headers.get("User-Agent", ""),
                     "accept": headers.get("Accept", ""),
                     "contentType": (headers.get("Content-Type") or "").split(";")[0] or None,
                     "verb": "", "apiGroup": None, "apiVersion": None, "resource": None,
                     "subresource": None, "namespace": None, "name": None,
                     "nonResourceURL": None, "watch": False, "user": None,
                     "status": None, "durationMs": None, "body": None}
            self.entries.append(entry)
            if len(self.entries) > self.limit:
                del self.entries[: len(self.entries) - self.limit]
            return entry

    def update(self, entry, **fields):
        with self.lock:
            entry.update(fields)

    def dump(self, since=0, user_agent=""):
        with self.lock:
            return [dict(e) for e in self.entries
                    if e["seq"] > since and user_agent in e["userAgent"]]

    def reset(self):
        with self.lock:
            self.entries = []


class Simulator:
    """Everything one server instance shares between its handler threads."""

    def __init__(self, args):
        self.store = Store(window=args.compaction_window)
        self.registry = Registry()
        self.api = Api(self.store, self.registry)
        self.faults = Faults()
        self.log = RequestLog()
        self.tokens = set(args.token or [])
        self.bookmark_interval = args.bookmark_interval
        self.default_watch_timeout = args.default_watch_timeout
        self.idle_timeout = args.idle_timeout
        self.verbose = args.verbose
        self.open_watches = 0
        self.watch_lock = threading.Lock()
        self.address = ""


# --------------------------------------------------------------------------
# The Kubernetes API handler

def _first(params, name, default=""):
    vals = params.get(name)
    return vals[0] if vals else default


class ApiHandler(BaseHTTPRequestHandler):
    """One connection of the API port (HTTP/1.1 keep-alive, TLS)."""

    protocol_version = "HTTP/1.1"
    server_version = "kube-apiserver-sim"
    sys_version = ""

    # -- connection plumbing --

    def setup(self):
        self.sim = self.server.sim
        self.request.settimeout(self.sim.idle_timeout)
        if isinstance(self.request, ssl.SSLSocket):
            self.request.do_handshake()
        super().setup()

    def log_message(self, fmt, *args):
        if self.sim.verbose:
            sys.stderr.write("apiserver-sim: " + (fmt % args) + "\n")

    def send_response(self, code, message=None):
        if getattr(self, "_entry", None) is not None:
            self.sim.log.update(self._entry, status=code)
        super().send_response(code, message)

    def do_GET(self):
        self._dispatch("GET")

    def do_HEAD(self):
        self._dispatch("HEAD")

    def do_POST(self):
        self._dispatch("POST")

    def do_PUT(self):
        self._dispatch("PUT")

    def do_PATCH(self):
        self._dispatch("PATCH")

    def do_DELETE(self):
        self._dispatch("DELETE")

    def _read_body(self):
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            parts, total = [], 0
            while True:
                line = self.rfile.readline(1024)
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass
                    break
                total += size
                if total > MAX_BODY:
                    raise E.ApiError(413, "RequestEntityTooLarge", "request entity too large")
                parts.append(self.rfile.read(size))
                self.rfile.readline(16)
            return b"".join(parts)
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            self.close_connection = True
            raise E.ApiError(413, "RequestEntityTooLarge", "request entity too large")
        return self.rfile.read(length) if length else b""

    def _send_bytes(self, code, data, content_type="application/json", headers=None):
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-cache, private")
        self.send_header("Audit-Id", self._audit_id)
        for warning in self._warnings:
            self.send_header("Warning", '299 - "%s"' % warning.replace('"', '\\"'))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self._headers_sent = True
        if self.command != "HEAD":
            self.wfile.write(data)

    def _send_json(self, code, obj, headers=None):
        if self._pretty:
            data = json.dumps(obj, indent=2).encode() + b"\n"
        else:
            data = json.dumps(obj, separators=(",", ":")).encode()
        self._send_bytes(code, data, headers=headers)

    # -- request dispatch --

    def _dispatch(self, method):
        started = time.monotonic()
        url = urlsplit(self.path)
        path, query = url.path, url.query
        params = parse_qs(query, keep_blank_values=True)
        self._entry = self.sim.log.start(method, path, query, self.headers)
        self._audit_id = str(uuid.uuid4())
        self._warnings = []
        self._headers_sent = False
        self._pretty = _first(params, "pretty") in ("true", "1")
        try:
            try:
                body = self._read_body()
            except ValueError:
                self.close_connection = True
                raise E.bad_request("malformed request body framing")
            if method in ("PUT", "PATCH", "POST") and path.endswith("/status"):
                # A status write's body (capped) is logged, so tests can tell which write carried
                # which status; nothing else's is (Secrets could be in them).
                self.sim.log.update(self._entry, body=body[:65536].decode("utf-8", "replace"))
            latency = self.sim.faults.latency_ms
            if latency > 0 and self.sim.faults.latency_ua in (self.headers.get("User-Agent") or ""):
                time.sleep(latency / 1000.0)
            if path not in PUBLIC_PATHS:
                self._authenticate()
            fault = self.sim.faults.take(method, path + ("?" + query if query else ""))
            if fault:
                code = fault["code"]
                headers = {}
                if fault.get("retryAfter") is not None:
                    headers["Retry-After"] = str(fault["retryAfter"])
                elif code == 429:
                    headers["Retry-After"] = "1"
                msg = fault["message"] or f"injected fault: HTTP {code}"
                raise E.ApiError(code, _REASONS.get(code, "Unknown"), msg,
                                 {"retryAfterSeconds": int(fault["retryAfter"])}
                                 if fault.get("retryAfter") is not None else None, headers)
            self._route(method, path, params, body)
        except E.ApiError as exc:
            if not self._headers_sent:
                self._send_json(exc.code, exc.to_status(), headers=exc.headers)
        except (ConnectionError, TimeoutError, ssl.SSLError, OSError):
            self.close_connection = True
        except Exception as exc:  # a bug: report it like the real server would
            traceback.print_exc()
            if not self._headers_sent:
                self._send_json(500, E.status_object(500, "InternalError",
                                                     f"Internal error occurred: {exc}"))
            self.close_connection = True
        finally:
            self.sim.log.update(self._entry,
                                durationMs=round((time.monotonic() - started) * 1000, 2))

    def _authenticate(self):
        auth = self.headers.get("Authorization") or ""
        token = auth[7:].strip() if auth.lower().startswith("bearer ") else ""
        if not token or token not in self.sim.tokens:
            self.sim.log.update(self._entry, user="system:anonymous")
            raise E.ApiError(401, "Unauthorized", "Unauthorized")
        self.sim.log.update(self._entry, user="admin")

    def _negotiate(self):
        """Response format from Accept: 'json', 'table' or 'meta'."""
        accept = self.headers.get("Accept") or "application/json"
        choices = [c.strip() for c in accept.split(",") if c.strip()]
        for choice in choices:
            parts = [p.strip() for p in choice.split(";")]
            media = parts[0]
            opts = dict(p.split("=", 1) for p in parts[1:] if "=" in p)
            if media not in ("application/json", "*/*", "application/*"):
                continue
            want = opts.get("as")
            if want == "Table":
                return "table"
            if want in ("PartialObjectMetadata", "PartialObjectMetadataList"):
                return "meta"
            if want is None:
                return "json"
        raise E.ApiError(406, "NotAcceptable",
                         "only the following media types are accepted: application/json, "
                         "application/json;as=Table;v=v1;g=meta.k8s.io")

    def _route(self, method, path, params, body):
        sim = self.sim
        if path in PUBLIC_PATHS or path.startswith(("/healthz/", "/livez/", "/readyz/")):
            self.sim.log.update(self._entry, verb=method.lower(), nonResourceURL=path)
            return self._send_bytes(200, b"ok", "text/plain; charset=utf-8")
        segs = [s for s in path.split("/") if s]
        if not segs or segs[0] not in ("api", "apis"):
            self.sim.log.update(self._entry, verb=method.lower(), nonResourceURL=path)
            if method not in ("GET", "HEAD"):
                raise E.method_not_allowed()
            return self._non_resource(path)
        not_found = E.ApiError(404, "NotFound", "the server could not find the requested resource")
        doc, target = None, None
        with sim.store.lock:          # compute under the lock, write to the socket after
            if segs[0] == "api":
                group, rest = "", segs[1:]
            else:
                group, rest = (segs[1] if len(segs) > 1 else None), segs[2:]
            if group is None or not rest:
                if segs[0] == "api":
                    doc = {"kind": "APIVersions", "versions": ["v1"],
                           "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0",
                                                           "serverAddress": sim.address}]}
                elif group is None:
                    doc = sim.registry.api_group_list()
                else:
                    doc = sim.registry.api_group(group) or not_found
            elif len(rest) == 1:
                doc = sim.registry.api_resource_list(group, rest[0]) or not_found
            else:
                target = self._resolve(group, rest[0], rest[1:])
        if target is None:
            self.sim.log.update(self._entry, verb=method.lower(), nonResourceURL=path)
            if doc is not_found:
                raise not_found
            return self._send_json(200, doc)
        self._resource(method, params, body, *target)

    def _non_resource(self, path):
        reg = self.sim.registry
        if path == "/version":
            return self._send_json(200, SERVER_VERSION)
        if path == "/openapi/v3":
            with self.sim.store.lock:
                doc = reg.openapi_v3_root()
            return self._send_json(200, doc)
        if path.startswith("/openapi/v3/"):
            rest = path[len("/openapi/v3/"):].split("/")
            with self.sim.store.lock:
                if rest[0] == "api" and len(rest) == 2:
                    doc = reg.openapi_v3_gv("", rest[1])
                elif rest[0] == "apis" and len(rest) == 3:
                    doc = reg.openapi_v3_gv(rest[1], rest[2])
                else:
                    doc = None
            if doc is not None:
                return self._send_json(200, doc)
        # /openapi/v2 is deliberately absent (kubectl falls back; see README)
        raise E.ApiError(404, "NotFound", "the server could not find the requested resource")

    def _resolve(self, group, version, rest):
        """Map the path after /api/v1 or /apis/g/v to (rt, namespace, name,
        subresource, legacy_watch)."""
        legacy_watch = False
        if rest and rest[0] == "watch":
            legacy_watch, rest = True, rest[1:]
        ns = ""
        if (rest and rest[0] == "namespaces" and len(rest) >= 3
                and not (group == "" and len(rest) == 3 and rest[2] in ("status", "finalize"))):
            ns, rest = rest[1], rest[2:]
            ns_given = True
        else:
            ns_given = False
        if not rest or len(rest) > 3:
            raise E.ApiError(404, "NotFound", "the server could not find the requested resource")
        resource = rest[0]
        name = rest[1] if len(rest) > 1 else ""
        sub = rest[2] if len(rest) > 2 else ""
        rt = self.sim.registry.lookup(group, version, resource)
        if rt is None or (ns_given and not rt.namespaced) or \
                (rt.namespaced and name and not ns_given) or \
                (sub and not (sub == "status" and rt.status)):
            raise E.ApiError(404, "NotFound", "the server could not find the requested resource")
        return rt, ns, name, sub, legacy_watch

    def _resource(self, method, params, body, rt, ns, name, sub, legacy_watch):
        sim = self.sim
        watch = legacy_watch or _first(params, "watch") in ("1", "true")
        if method in ("GET", "HEAD"):
            verb = "watch" if watch else ("get" if name else "list")
        else:
            verb = {"POST": "create", "PUT": "update", "PATCH": "patch",
                    "DELETE": "delete" if name else "deletecollection"}[method]
        sim.log.update(self._entry, verb=verb, apiGroup=rt.group, apiVersion=rt.version,
                       resource=rt.plural, subresource=sub or None,
                       namespace=ns or None, name=name or None, watch=verb == "watch")
        if verb == "watch":
            if name:
                params = dict(params)
                params["fieldSelector"] = [f"metadata.name={name}"]
            return self._watch(rt, ns, params, self._negotiate())
        if verb == "get":
            fmt = self._negotiate()
            obj = sim.api.get(rt, ns, name)
            return self._send_json(200, self._format_one(rt, obj, fmt, params))
        if verb == "list":
            fmt = self._negotiate()
            items, meta = sim.api.list(rt, ns, params)
            return self._send_json(200, self._format_list(rt, items, meta, fmt, params))
        if method == "POST" and (name or (rt.namespaced and not ns)):
            raise E.method_not_allowed()
        ctype = (self.headers.get("Content-Type") or "application/json").lower()
        protobuf = "application/vnd.kubernetes.protobuf" in ctype
        if protobuf and verb not in ("create", "update"):
            raise E.ApiError(415, "UnsupportedMediaType",
                             "the body of the request was in an unknown format - accepted "
                             "media types include: application/json")
        if verb == "patch":
            obj, warnings = sim.api.patch(rt, ns, name, ctype, body, params, sub)
            self._warnings += warnings
            return self._send_json(200, obj)
        if verb in ("delete", "deletecollection"):
            options = self._json_body(body) if body.strip() else {}
            for q in ("propagationPolicy", "gracePeriodSeconds"):
                if q in params:
                    options.setdefault(q, _first(params, q))
            if verb == "delete":
                return self._send_json(200, sim.api.delete(rt, ns, name, options, params))
            deleted = sim.api.delete_collection(rt, ns, params, options)
            return self._send_json(200, {"kind": rt.list_kind, "apiVersion": rt.api_version,
                                         "metadata": {"resourceVersion": str(sim.store.rv)},
                                         "items": deleted})
        obj = decode_object(body) if protobuf else self._json_body(body)
        if verb == "create":
            if sub:
                raise E.method_not_allowed()
            created, warnings = sim.api.create(rt, ns, obj, params)
            self._warnings += warnings
            return self._send_json(201, created)
        updated, warnings = sim.api.update(rt, ns, name, obj, params, sub)
        self._warnings += warnings
        return self._send_json(200, updated)

    @staticmethod
    def _json_body(body):
        try:
            return json.loads(body or b"null")
        except ValueError as exc:
            raise E.bad_request(f"couldn't get version/kind; json parse error: {exc}")

    def _format_one(self, rt, obj, fmt, params):
        if fmt == "table":
            return to_table(rt, [obj], {"resourceVersion": obj["metadata"].get(
                "resourceVersion", "")}, _first(params, "includeObject", "Metadata"))
        if fmt == "meta":
            return {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                    "metadata": obj.get("metadata", {})}
        return obj

    def _format_list(self, rt, items, meta, fmt, params):
        if fmt == "table":
            return to_table(rt, items, meta, _first(params, "includeObject", "Metadata"))
        if fmt == "meta":
            return {"kind": "PartialObjectMetadataList", "apiVersion": "meta.k8s.io/v1",
                    "metadata": meta,
                    "items": [{"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                               "metadata": o.get("metadata", {})} for o in items]}
        return {"kind": rt.list_kind, "apiVersion": rt.api_version, "metadata": meta,
                "items": items}

    # -- watch --

    def _write_chunk(self, data):
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))

    def _write_event(self, type_, obj):
        self._write_chunk(json.dumps({"type": type_, "object": obj},
                                     separators=(",", ":")).encode() + b"\n")

    def _peer_closed(self):
        """True once the client sent anything (FIN, TLS close_notify, data)
        on a connection that is streaming a watch: the client is gone."""
        try:
            readable, _, _ = select.select([self.connection], [], [], 0)
        except (OSError, ValueError):
            return True
        return bool(readable)

    def _watch(self, rt, ns, params, fmt):
        """Serve one watch stream; see README "Watch" for the semantics."""
        sim, store = self.sim, self.sim.store
        rv_param = _first(params, "resourceVersion")
        bookmarks = _first(params, "allowWatchBookmarks") in ("true", "1")
        send_initial = _first(params, "sendInitialEvents") == "true"
        try:
            timeout = float(_first(params, "timeoutSeconds") or sim.default_watch_timeout)
        except ValueError:
            raise E.bad_request("timeoutSeconds must be a number")
        deadline = time.monotonic() + max(timeout, 0)
        flt = WatchFilter(sim.api, rt, ns, params)
        if rv_param not in ("", "0"):
            try:
                start_rv = int(rv_param)
            except ValueError:
                raise E.bad_request(f'invalid resource version "{rv_param}"')
        error, initial = None, []
        with store.lock:
            epoch = store.watch_epoch
            if send_initial or rv_param in ("", "0"):
                initial = [o for o in store.items(rt.storage_key,
                                                  ns if rt.namespaced and ns else None)
                           if flt.match(o)]
                cursor = store.rv
            else:
                cursor = start_rv
                if cursor < store.compacted_rv:
                    error = E.expired(f"too old resource version: {cursor} "
                                      f"({store.compacted_rv})").to_status()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Cache-Control", "no-cache, private")
        self.send_header("Audit-Id", self._audit_id)
        self.send_header("Connection", "close")      # one watch per connection
        self.end_headers()
        self._headers_sent = True
        with sim.watch_lock:
            sim.open_watches += 1
        abrupt = False
        try:
            if error:
                self._write_event("ERROR", error)
                return
            for obj in initial:
                self._write_event("ADDED", self._format_event_obj(rt, obj, fmt))
            if send_initial:
                self._write_event("BOOKMARK", self._bookmark(rt, cursor, initial_end=True))
            next_bookmark = time.monotonic() + sim.bookmark_interval
            while True:
                events, stop = [], None
                with store.cond:
                    while stop is None:
                        if store.closed or store.watch_epoch != epoch or \
                                sim.registry.lookup(rt.group, rt.version, rt.plural) is None:
                            stop = "closed"
                            abrupt = epoch in sim.faults.abrupt_epochs
                            break
                        if store.rv > cursor:
                            break
                        now = time.monotonic()
                        if now >= deadline:
                            stop = "timeout"
                            break
                        if bookmarks and now >= next_bookmark:
                            break
                        wake = min(deadline, next_bookmark if bookmarks else deadline, now + 1.0)
                        store.cond.wait(max(wake - now, 0.01))
                        if self._peer_closed():
                            stop = "peer"
                    if stop is None and store.rv > cursor:
                        if cursor < store.compacted_rv:
                            error = E.expired(f"too old resource version: {cursor} "
                                              f"({store.compacted_rv})").to_status()
                        else:
                            events = [e for e in map(flt.convert, store.events_after(cursor)) if e]
                            cursor = store.rv
                if stop is not None:
                    return
                if error:
                    self._write_event("ERROR", error)
                    return
                for type_, obj in events:
                    self._write_event(type_, self._format_event_obj(rt, obj, fmt))
                if bookmarks and time.monotonic() >= next_bookmark:
                    self._write_event("BOOKMARK", self._bookmark(rt, cursor))
                    next_bookmark = time.monotonic() + sim.bookmark_interval
        finally:
            with sim.watch_lock:
                sim.open_watches -= 1
            self.close_connection = True
            if abrupt:
                try:
                    self.connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            else:
                try:
                    self.wfile.write(b"0\r\n\r\n")
                except OSError:
                    pass

    def _format_event_obj(self, rt, obj, fmt):
        obj = present(rt, obj)
        if fmt == "table":
            return to_table(rt, [obj], {"resourceVersion": obj["metadata"].get(
                "resourceVersion", "")})
        if fmt == "meta":
            return {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                    "metadata": obj.get("metadata", {})}
        return obj

    @staticmethod
    def _bookmark(rt, rv, initial_end=False):
        meta = {"resourceVersion": str(rv), "creationTimestamp": None}
        if initial_end:
            meta["annotations"] = {"k8s.io/initial-events-end": "true"}
        return {"kind": rt.kind, "apiVersion": rt.api_version, "metadata": meta}


# --------------------------------------------------------------------------
# The admin port (plain HTTP, 127.0.0.1)

class AdminHandler(BaseHTTPRequestHandler):
    """Test control: faults, request log, health. JSON in, JSON out."""

    protocol_version = "HTTP/1.1"
    server_version = "kube-apiserver-sim-admin"
    sys_version = ""

    def setup(self):
        self.sim = self.server.sim
        self.request.settimeout(self.sim.idle_timeout)
        super().setup()

    def log_message(self, fmt, *args):
        if self.sim.verbose:
            sys.stderr.write("apiserver-sim admin: " + (fmt % args) + "\n")

    def _reply(self, code, obj):
        data = json.dumps(obj, indent=1).encode() + b"\n"
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        url = urlsplit(self.path)
        params = parse_qs(url.query)
        sim = self.sim
        if url.path == "/healthz":
            return self._reply(200, {"ok": True})
        if url.path == "/requests":
            return self._reply(200, {"requests": sim.log.dump(
                int(_first(params, "since", "0") or 0), _first(params, "userAgent"))})
        if url.path == "/faults":
            return self._reply(200, sim.faults.snapshot())
        if url.path == "/stats":
            with sim.store.lock:
                counts = {k: len(v) for k, v in sim.store.objects.items() if v}
                body = {"resourceVersion": sim.store.rv, "compactedRV": sim.store.compacted_rv,
                        "historyLength": len(sim.store.history), "objects": counts}
            with sim.watch_lock:
                body["openWatches"] = sim.open_watches
            return self._reply(200, body)
        return self._reply(404, {"error": f"no such admin endpoint: GET {url.path}"})

    def do_POST(self):
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw.strip() else {}
        except ValueError as exc:
            return self._reply(400, {"error": f"bad JSON: {exc}"})
        sim = self.sim
        if url.path == "/faults/drop-watches":
            with sim.store.lock:
                if body.get("abrupt"):
                    sim.faults.abrupt_epochs.add(sim.store.watch_epoch)
                with sim.watch_lock:
                    dropped = sim.open_watches
                sim.store.drop_watches()
            return self._reply(200, {"dropped": dropped})
        if url.path == "/faults/fail":
            return self._reply(200, {"rule": sim.faults.add_rule(body)})
        if url.path == "/faults/latency":
            sim.faults.latency_ua = str(body.get("userAgent") or "")
            sim.faults.latency_ms = max(0, int(body.get("ms", 0)))
            return self._reply(200, {"latencyMs": sim.faults.latency_ms, "userAgent": sim.faults.latency_ua})
        if url.path == "/faults/compact":
            sim.store.compact()
            return self._reply(200, {"compactedRV": sim.store.compacted_rv})
        if url.path == "/faults/clear":
            sim.faults.clear()
            return self._reply(200, {"ok": True})
        if url.path == "/faults/remove":
            return self._reply(200, {"removed": sim.faults.remove(body.get("match") or "")})
        if url.path == "/reset-requests":
            sim.log.reset()
            return self._reply(200, {"ok": True})
        return self._reply(404, {"error": f"no such admin endpoint: POST {url.path}"})


# --------------------------------------------------------------------------
# Servers, certificates, CLI

class SimServer(ThreadingHTTPServer):
    """ThreadingHTTPServer whose connections are TLS-wrapped lazily: the
    handshake runs in the connection's own thread, never in the accept loop."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address, handler, sim, ssl_ctx=None):
        self.sim = sim
        self.ssl_ctx = ssl_ctx
        super().__init__(address, handler)

    def get_request(self):
        sock, addr = self.socket.accept()
        if self.ssl_ctx is not None:
            sock = self.ssl_ctx.wrap_socket(sock, server_side=True,
                                            do_handshake_on_connect=False)
        return sock, addr

    def handle_error(self, request, client_address):
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError, ssl.SSLError, OSError)):
            return
        super().handle_error(request, client_address)


def _openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.PIPE, timeout=60)


def generate_certs(directory):
    """Create ca.crt/ca.key and server.crt/server.key (ECDSA P-256, SANs
    127.0.0.1, ::1, localhost) with the openssl CLI. Returns (cert, key, ca)."""
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, "ca.cnf"), "w") as f:
        f.write("[req]\ndistinguished_name = dn\nprompt = no\n[dn]\nCN = doorman-sim-ca\n"
                "[v3_ca]\nbasicConstraints = critical,CA:TRUE\n"
                "keyUsage = critical,keyCertSign,cRLSign\nsubjectKeyIdentifier = hash\n")
    with open(os.path.join(directory, "server.ext"), "w") as f:
        f.write("basicConstraints = CA:FALSE\nkeyUsage = critical,digitalSignature,"
                "keyEncipherment\nextendedKeyUsage = serverAuth\n"
                "subjectAltName = IP:127.0.0.1,IP:::1,DNS:localhost\n")
    ec = ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"]
    _openssl("genpkey", *ec, "-out", "ca.key", cwd=directory)
    _openssl("req", "-x509", "-new", "-config", "ca.cnf", "-extensions", "v3_ca",
             "-key", "ca.key", "-days", "3650", "-out", "ca.crt", cwd=directory)
    _openssl("genpkey", *ec, "-out", "server.key", cwd=directory)
    _openssl("req", "-new", "-key", "server.key", "-subj", "/CN=kube-apiserver-sim",
             "-out", "server.csr", cwd=directory)
    _openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
             "-CAcreateserial", "-days", "3650", "-extfile", "server.ext",
             "-out", "server.crt", cwd=directory)
    return tuple(os.path.join(directory, n) for n in ("server.crt", "server.key", "ca.crt"))


def write_kubeconfig(path, server_url, ca_path, token):
    """A kubeconfig (JSON is valid YAML) for kubectl and client libraries."""
    with open(ca_path, "rb") as f:
        ca_data = base64.b64encode(f.read()).decode()
    config = {
        "apiVersion": "v1", "kind": "Config", "preferences": {},
        "clusters": [{"name": "doorman-sim", "cluster": {
            "server": server_url, "certificate-authority-data": ca_data}}],
        "users": [{"name": "doorman-sim", "user": {"token": token}}],
        "contexts": [{"name": "doorman-sim", "context": {
            "cluster": "doorman-sim", "user": "doorman-sim", "namespace": "default"}}],
        "current-context": "doorman-sim",
    }
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(config, f, indent=2)
    os.replace(tmp, path)


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bind", default="127.0.0.1", help="address to listen on (API port)")
    p.add_argument("--port", type=int, default=6443, help="API port; 0 picks a free one")
    p.add_argument("--cert", help="server certificate (PEM)")
    p.add_argument("--key", help="server private key (PEM)")
    p.add_argument("--gen-certs", metavar="DIR",
                   help="create a CA, a server cert and DIR/kubeconfig (+ DIR/token)")
    p.add_argument("--plain-http", action="store_true",
                   help="serve the API without TLS (for clients that cannot do TLS)")
    p.add_argument("--token", action="append",
                   help="accepted bearer token (repeatable; generated with --gen-certs if none)")
    p.add_argument("--compaction-window", type=int, default=10000,
                   help="change events kept for watch resume and continue tokens")
    p.add_argument("--bookmark-interval", type=float, default=5.0,
                   help="seconds between BOOKMARK events on allowWatchBookmarks watches")
    p.add_argument("--default-watch-timeout", type=float, default=1800.0,
                   help="watch duration when the client gives no timeoutSeconds")
    p.add_argument("--idle-timeout", type=float, default=120.0,
                   help="socket timeout: idle keep-alive connections and stalled writes")
    p.add_argument("--admin-port", type=int, default=None,
                   help="plain-HTTP admin port on 127.0.0.1 (0 picks a free one)")
    p.add_argument("--verbose", action="store_true", help="log every request to stderr")
    args = p.parse_args(argv)
    if not args.plain_http and not args.gen_certs and not (args.cert and args.key):
        p.error("TLS needs --cert and --key, or --gen-certs DIR (or use --plain-http)")
    return args


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    ca_path = None
    if args.gen_certs:
        args.cert, args.key, ca_path = generate_certs(args.gen_certs)
        if not args.token:
            args.token = [secrets.token_hex(16)]
        with open(os.path.join(args.gen_certs, "token"), "w") as f:
            f.write(args.token[0] + "\n")
    if not args.token:
        args.token = [secrets.token_hex(16)]
        sys.stderr.write(f"apiserver-sim: generated token {args.token[0]}\n")
    ssl_ctx = None
    if not args.plain_http:
        ssl_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ssl_ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ssl_ctx.load_cert_chain(args.cert, args.key)
        ssl_ctx.set_alpn_protocols(["http/1.1"])

    sim = Simulator(args)
    api_server = SimServer((args.bind, args.port), ApiHandler, sim, ssl_ctx)
    host, port = api_server.server_address[:2]
    sim.address = f"{host}:{port}"
    admin_server = None
    if args.admin_port is not None:
        admin_server = SimServer(("127.0.0.1", args.admin_port), AdminHandler, sim)
    if args.gen_certs:
        write_kubeconfig(os.path.join(args.gen_certs, "kubeconfig"),
                         f"{'http' if args.plain_http else 'https'}://{host}:{port}",
                         ca_path, args.token[0])

    print(f"LISTENING {host}:{port}", flush=True)
    if admin_server:
        print(f"ADMIN 127.0.0.1:{admin_server.server_address[1]}", flush=True)
    if args.gen_certs:
        print(f"KUBECONFIG {os.path.join(os.path.abspath(args.gen_certs), 'kubeconfig')}",
              flush=True)

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    for srv in filter(None, (api_server, admin_server)):
        threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.5},
                         daemon=True).start()
    while not stop.wait(1.0):
        pass
    sim.store.close()                  # ends every watch stream cleanly
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline:
        with sim.watch_lock:
            if sim.open_watches == 0:
                break
        time.sleep(0.02)
    # Handler and accept threads are daemons: exiting the process ends them
    # and closes every socket, without waiting out serve_forever's poll.
    return 0


if __name__ == "__main__":
    sys.exit(main())
