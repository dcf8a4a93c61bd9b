#!/usr/bin/env python3
"""The Kubernetes side of the controller, end to end against the project's API server.

Real processes on 127.0.0.1: tests/kube-apiserver-sim (HTTPS, generated certificates and
kubeconfig), the real kubectl applying objects, doorman-controller --kubeconfig, doorman-dataplane,
Python HTTP backends and curl. Covers: LoadBalancer -> routing + status (Accepted, Programmed,
addresses, listeners, dataplanes), EndpointSlice changes re-route, deletes remove listeners,
invalid objects -> Accepted=False + Warning Event while others route, no status write storms,
watch faults (drops, 410 after compaction -> relist without stale routes, bursts of 500/429),
leader election (exactly one status writer; takeover after SIGKILL within the lease; release on
SIGTERM), and Service type LoadBalancer / Ingress when their translation is available.
"""
import datetime
import json
import os
import signal
import socket
import subprocess
import sys
import time
import unittest
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (CONTROLLER, DATAPLANE, DoormanTestCase, backend_of, curl, free_port, http_get,  # noqa: E402
                     metric_value, port_open, wait_until)

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
SIM = os.path.join(ROOT, "tests", "kube-apiserver-sim", "apiserver.py")
CRD = os.path.join(ROOT, "crds", "doorman.dev_loadbalancers.yaml")
TOKEN = "doorman-it-token"
UA_STATUS_WRITE = ("PATCH", "PUT")


def lb_yaml(name, port, backends, protocol="HTTP", extra_route=""):
    return f"""\
apiVersion: doorman.dev/v1alpha1
kind: LoadBalancer
metadata: {{name: {name}, namespace: default}}
spec:
  listeners:
    - {{name: web, port: {port}, protocol: {protocol}}}
  routes:
    - name: app
      listener: web
      backends:
{backends}{extra_route}"""


def service_backend(svc="web", port=80):
    return f"        - {{service: {svc}, port: {port}}}\n"


def service_and_slice(backend_port, svc="web", port=80, extra_spec=""):
    return f"""\
apiVersion: v1
kind: Service
metadata: {{name: {svc}, namespace: default}}
spec:
  ports: [{{name: http, port: {port}, targetPort: {backend_port}, protocol: TCP}}]
{extra_spec}---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: {svc}-1
  namespace: default
  labels: {{kubernetes.io/service-name: {svc}}}
addressType: IPv4
ports: [{{name: http, port: {backend_port}, protocol: TCP}}]
endpoints:
  - addresses: [127.0.0.1]
    conditions: {{ready: true, serving: true, terminating: false}}
"""


class KubeTestCase(DoormanTestCase):
    """A fresh API server per test, with the LoadBalancer CRD installed."""

    def setUp(self):
        super().setUp()
        # unittest skips tearDown when setUp fails: make sure no process outlives the test.
        self.addCleanup(lambda: [p.stop() for p in reversed(self.procs)])
        self.simdir = os.path.join(self.tmp, "sim")
        sim = self.spawn("apiserver", [sys.executable, SIM, "--port", "0", "--gen-certs", self.simdir,
                                       "--token", TOKEN, "--admin-port", "0", "--bookmark-interval", "1"])

        def lines():
            out = {}
            for line in sim.log().splitlines():
                parts = line.split(" ", 1)
                if len(parts) == 2 and parts[0] in ("LISTENING", "ADMIN", "KUBECONFIG"):
                    out[parts[0]] = parts[1].strip()
            return out if len(out) == 3 else None
        info = wait_until(lines, timeout=30, what="kube-apiserver-sim to start")
        self.kubeconfig = info["KUBECONFIG"]
        self.admin_url = "http://" + info["ADMIN"]
        self.controllers = {}
        self.kubectl("apply", "-f", CRD)
        wait_until(lambda: self.kubectl("get", "loadbalancers", check=False).returncode == 0,
                   what="LoadBalancer CRD served")

    # --- kubectl and the sim's admin API ---------------------------------------------------
    def kubectl(self, *args, stdin=None, check=True):
        r = subprocess.run(["kubectl", "--kubeconfig", self.kubeconfig] + list(args), input=stdin,
                           capture_output=True, text=True, timeout=30)
        if check and r.returncode != 0:
            raise AssertionError("kubectl %s failed: %s%s" % (" ".join(args), r.stdout, r.stderr))
        return r

    def apply(self, text):
        return self.kubectl("apply", "-f", "-", stdin=text)

    def warning_event(self, name, ns="default"):
        """The first Warning Event about object `name`, or None."""
        r = self.kubectl("get", "events", "-n", ns, "-o", "json", "--field-selector", "involvedObject.name=" + name)
        items = [e for e in json.loads(r.stdout)["items"] if e.get("type") == "Warning"]
        return items[0] if items else None

    def get(self, kind, name, ns="default"):
        r = self.kubectl("get", kind, name, "-n", ns, "-o", "json", check=False)
        return json.loads(r.stdout) if r.returncode == 0 else None

    def admin(self, path, body=None, method=None):
        """The sim's admin API: POST when a body is given (or method="POST"), else GET."""
        data = json.dumps(body if body is not None else {}).encode() if (body is not None or method == "POST") else None
        req = urllib.request.Request(self.admin_url + path, data=data, method=method or ("POST" if data else "GET"),
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read() or b"{}")

    def requests_by(self, user_agent):
        return self.admin("/requests?userAgent=" + urllib.request.quote(user_agent))["requests"]

    def status_write_after(self, user_agent, name, since, timeout=15, carrying=None):
        """Wall-clock time of the first status write of LoadBalancer `name` by `user_agent`
        that started at or after `since` (time.time()), from the sim's request log: a latency
        measured without kubectl's own start-up and polling in it. With `carrying`, only a
        write whose body's `status` makes carrying(status) true counts."""
        def carries(r):
            if carrying is None:
                return True
            try:
                return bool(carrying((json.loads(r.get("body") or "{}").get("status")) or {}))
            except (ValueError, AttributeError):
                return False

        def first():
            times = [r["time"] for r in self.requests_by(user_agent)
                     if r["method"] in UA_STATUS_WRITE and r["path"].endswith("/loadbalancers/%s/status" % name)
                     and r["time"] >= since and carries(r)]
            return min(times) if times else None
        return wait_until(first, timeout=timeout, interval=0.1, what="a status write of " + name)

    def status_writes(self, user_agent, resource=None):
        return [r for r in self.requests_by(user_agent)
                if r["method"] in UA_STATUS_WRITE and r.get("subresource") == "status"
                and (resource is None or r.get("resource") == resource)]

    # --- doorman ---------------------------------------------------------------------------
    def start_kube_controller(self, name="controller", extra=(), wait_ready=True, kubeconfig=None, node_local=True):
        # node_local: the tests' backends are on 127.0.0.1, which a cluster refuses by default.
        grpc_port = free_port()
        metrics_port = free_port()
        p = self.spawn(name, [CONTROLLER, "--kubeconfig", kubeconfig or self.kubeconfig, "--pod-name", name,
                              "--grpc-listen", "127.0.0.1:%d" % grpc_port,
                              "--metrics-listen", "127.0.0.1:%d" % metrics_port]
                       + (["--allow-node-local-endpoints"] if node_local else []) + list(extra))
        p.metrics_port = metrics_port
        p.grpc_port = grpc_port
        self.controllers[name] = p
        if name == "controller" or not hasattr(self, "grpc_port"):
            self.grpc_port = grpc_port
            self.ctl_metrics_port = metrics_port
            self.controller = p
        if wait_ready:
            wait_until(lambda: http_get("http://127.0.0.1:%d/readyz" % metrics_port)[0] == 200,
                       what="%s /readyz" % name)
        return p

    def debug_snapshot(self, port=None):
        return json.loads(http_get("http://127.0.0.1:%d/debug/snapshot" % (port or self.ctl_metrics_port))[2])

    def debug_status(self, port=None):
        return json.loads(http_get("http://127.0.0.1:%d/debug/status" % (port or self.ctl_metrics_port))[2])

    def listener_names(self):
        return sorted(l["name"] for l in self.debug_snapshot()["snapshot"].get("listeners", []))

    def object_status(self, kind, name):
        for o in self.debug_status()["objects"]:
            if o["kind"] == kind and o["name"] == name:
                return o
        return None

    def condition(self, obj, ctype):
        for c in ((obj or {}).get("status") or {}).get("conditions", []):
            if c["type"] == ctype:
                return c
        return None

    def wait_condition(self, name, ctype, status, timeout=15, reason=None):
        def ok():
            obj = self.get("loadbalancer", name)
            c = self.condition(obj, ctype)
            if c and c["status"] == status and (reason is None or c["reason"] == reason) and \
                    c.get("observedGeneration") == obj["metadata"].get("generation"):
                return obj
            return None
        return wait_until(ok, timeout=timeout, interval=0.1,
                          what="LoadBalancer %s %s=%s" % (name, ctype, status))

    def fetch(self, port, host="app.local"):
        r = curl(["-H", "Host: " + host, "http://127.0.0.1:%d/" % port], timeout=5)
        if r.returncode != 0:
            return None
        try:
            return backend_of(r.stdout)
        except (ValueError, KeyError):
            return None


class NodeLocalEndpoints(KubeTestCase):
    def test_a_loopback_endpoint_is_refused_in_a_cluster_and_a_service_backend_routes(self):
        # helper-137: the dataplane shares the node's network, so a LoadBalancer endpoint on
        # 127.0.0.1 reached the dataplane's own admin port (and 169.254.169.254 a cloud's
        # metadata service). A cluster refuses it, as the API server refuses it in a slice.
        a = self.start_backend("a")
        self.apply(service_and_slice(a))
        local, svc = free_port(), free_port()
        self.apply(lb_yaml("local", local, "        - endpoints: [{address: 127.0.0.1, port: %d}]\n" % a))
        self.apply(lb_yaml("svc", svc, service_backend()))
        self.start_kube_controller(node_local=False)
        self.start_dataplane(["--advertise-address", "127.0.0.1"])
        obj = self.wait_condition("local", "Accepted", "False")
        acc = self.condition(obj, "Accepted")
        self.assertEqual(acc["reason"], "InvalidSpec")
        self.assertIn("spec.routes[0].backends[0].endpoints[0].address: \"127.0.0.1\" is in the loopback range", acc["message"])
        self.assertIn("--allow-node-local-endpoints", acc["message"])
        wait_until(lambda: self.fetch(svc) == "a", what="the Service-backed LoadBalancer routes")
        self.assertFalse(port_open(local))


class LoadBalancerOnKubernetes(KubeTestCase):
    def setUp(self):
        super().setUp()
        self.a = self.start_backend("a")
        self.b = self.start_backend("b")
        self.port = free_port()
        self.apply(service_and_slice(self.a))
        self.apply(lb_yaml("shop", self.port, service_backend()))
        self.start_kube_controller()
        self.start_dataplane(["--advertise-address", "127.0.0.1"])

    def test_routes_and_status_accepted_programmed(self):
        wait_until(lambda: self.fetch(self.port) == "a", what="traffic to backend a through the LoadBalancer")
        obj = self.wait_condition("shop", "Programmed", "True")
        st = obj["status"]
        self.assertEqual(self.condition(obj, "Accepted")["status"], "True")
        self.assertEqual(st["observedGeneration"], obj["metadata"]["generation"])
        self.assertEqual(st["addresses"], [{"type": "IPAddress", "value": "127.0.0.1"}])
        self.assertEqual(st["listeners"], [{"name": "web", "attachedRoutes": 1}])
        self.assertEqual(st["dataplanes"], {"ready": 1, "programmed": 1})
        # kubectl's printer columns read the same status.
        out = self.kubectl("get", "dlb", "shop").stdout
        # Columns (crds/): NAME LISTENERS ADDRESS ACCEPTED PROGRAMMED AGE; a column shows the first
        # listener / address only, as a real API server's table converter does.
        self.assertRegex(out, r"shop\s+web\s+127\.0\.0\.1\s+True\s+True\s")
        # Watch events were counted per resource.
        m = self.controller_metrics()
        self.assertGreaterEqual(metric_value(m, "doorman_controller_watch_events_total",
                                             {"resource": "loadbalancers", "type": "ADDED"}) or 0, 1)
        self.assertEqual(metric_value(m, "doorman_controller_leader"), 1)

        # A spec change bumps the generation: Programmed follows the new generation.
        self.apply(lb_yaml("shop", self.port, service_backend(), extra_route="""\
    - name: api
      listener: web
      match: {path: {type: Prefix, value: /api}}
      backends:
        - endpoints: [{address: 127.0.0.1, port: %d}]
""" % self.b))
        obj = self.wait_condition("shop", "Programmed", "True")
        self.assertEqual(obj["metadata"]["generation"], 2)
        self.assertEqual(obj["status"]["listeners"], [{"name": "web", "attachedRoutes": 2}])
        wait_until(lambda: backend_of(curl(["http://127.0.0.1:%d/api/x" % self.port]).stdout) == "b",
                   what="the new /api route")

        # No write storm: a quiet system does not write status.
        before = len(self.status_writes("(controller)"))
        time.sleep(2.5)
        self.assertEqual(len(self.status_writes("(controller)")), before)

    def test_an_unquoted_retries_on_as_api_md_writes_it_is_honoured(self):
        # kubectl's YAML 1.1 makes API.md's unquoted `on:` the key "true": the CRD takes it and the
        # controller routes with it as "on" (not refused, not ignored).
        self.apply(lb_yaml("shop", self.port, service_backend(), extra_route="""\
    - name: retried
      listener: web
      match: {path: {type: Prefix, value: /r}}
      backends:
        - endpoints: [{address: 127.0.0.1, port: %d}]
      policy:
        retries: {attempts: 2, on: [reset, "503"]}
""" % self.b))
        obj = self.wait_condition("shop", "Programmed", "True")
        self.assertEqual(obj["metadata"]["generation"], 2)
        self.assertEqual(obj["spec"]["routes"][1]["policy"]["retries"]["true"], ["reset", "503"])
        routes = {r["name"]: r for r in self.debug_snapshot()["snapshot"]["routes"]}
        self.assertEqual(routes["default/shop/retried"]["policy"]["retries"], {"attempts": 2, "on": ["reset", "503"]})

    def test_endpoint_change_reroutes_and_delete_removes_listener(self):
        wait_until(lambda: self.fetch(self.port) == "a", what="traffic to backend a")
        self.apply(service_and_slice(self.b))  # the slice now points at backend b
        wait_until(lambda: self.fetch(self.port) == "b", what="traffic re-routed to backend b")
        self.kubectl("delete", "loadbalancer", "shop")
        wait_until(lambda: self.listener_names() == [], what="listener removed from the snapshot")
        wait_until(lambda: not port_open(self.port), what="dataplane stops listening on :%d" % self.port)

    def test_invalid_loadbalancer_is_reported_while_others_route(self):
        good = free_port()
        self.apply(lb_yaml("good", good, "        - endpoints: [{address: 127.0.0.1, port: %d}]\n" % self.b))
        bad = free_port()
        self.apply(lb_yaml("bad", bad, service_backend(), extra_route="""\
    - name: broken
      listener: web
      match: {path: {type: RegularExpression, value: "(unclosed"}}
      backends:
        - endpoints: [{address: 127.0.0.1, port: %d}]
""" % self.b))
        obj = self.wait_condition("bad", "Accepted", "False")
        acc = self.condition(obj, "Accepted")
        self.assertEqual(acc["reason"], "InvalidSpec")
        self.assertIn("spec.routes[1].match.path", acc["message"])
        self.assertEqual(self.condition(obj, "Programmed")["status"], "False")
        wait_until(lambda: self.fetch(good) == "b", what="the valid LoadBalancer routes")
        self.assertEqual(self.fetch(self.port), "a")
        self.assertFalse(port_open(bad))

        ev = wait_until(lambda: self.warning_event("bad"), what="a Warning Event for the invalid LoadBalancer")
        self.assertEqual(ev["reason"], "InvalidSpec")
        self.assertEqual(ev["involvedObject"]["kind"], "LoadBalancer")
        self.assertEqual(ev["involvedObject"]["uid"], obj["metadata"]["uid"])
        self.assertIn("spec.routes[1].match.path", ev["message"])
        # Once: no Event or status storm while nothing changes. Settle first: good's
        # Programmed (written after the dataplane's ACK) is the last write that is due.
        self.wait_condition("good", "Programmed", "True")
        writes = len(self.status_writes("(controller)"))
        events = [r for r in self.requests_by("(controller)") if r.get("resource") == "events"]
        time.sleep(2.5)
        self.assertEqual(len(self.status_writes("(controller)")), writes)
        self.assertEqual(len([r for r in self.requests_by("(controller)") if r.get("resource") == "events"]),
                         len(events))
        # Fixing it makes it Accepted and Programmed.
        self.apply(lb_yaml("bad", bad, service_backend()))
        self.wait_condition("bad", "Programmed", "True")
        wait_until(lambda: self.fetch(bad) == "a", what="the fixed LoadBalancer routes")


    def test_warnings_of_an_accepted_loadbalancer_are_a_warning_event(self):
        # A backend Service that does not exist: accepted (the other backend routes), and what
        # has no effect is told where kubectl shows it.
        port = free_port()
        self.apply(lb_yaml("partial", port, service_backend() + service_backend("missing")))
        obj = self.wait_condition("partial", "Accepted", "True")
        ev = wait_until(lambda: self.warning_event("partial"), what="a Warning Event for the LoadBalancer's warning")
        self.assertEqual(ev["reason"], "BackendNotFound")
        self.assertEqual(ev["involvedObject"]["uid"], obj["metadata"]["uid"])
        self.assertIn("spec.routes[0].backends[1].service", ev["message"])
        wait_until(lambda: self.fetch(port) == "a", what="the LoadBalancer routes to the Service that exists")


class WatchFaults(KubeTestCase):
    def setUp(self):
        super().setUp()
        self.a = self.start_backend("a")
        self.b = self.start_backend("b")
        self.p1 = free_port()
        self.p2 = free_port()
        self.apply(service_and_slice(self.a))
        self.apply(lb_yaml("one", self.p1, service_backend()))
        self.apply(lb_yaml("two", self.p2, service_backend()))
        self.start_kube_controller(extra=["--log-level", "debug"])
        self.start_dataplane(["--advertise-address", "127.0.0.1"])
        wait_until(lambda: self.fetch(self.p1) == "a" and self.fetch(self.p2) == "a", what="both routing")

    def test_dropped_watches_resume(self):
        for abrupt in (False, True):
            self.admin("/faults/drop-watches", {"abrupt": abrupt})
            target, old = (self.b, "b") if not abrupt else (self.a, "a")
            self.apply(service_and_slice(target))
            wait_until(lambda: self.fetch(self.p1) == old, what="change seen after a %s drop" %
                       ("abrupt" if abrupt else "clean"))
        # Resumed from the last resourceVersion: no relist needed.
        self.assertNotIn("relisting", self.controller.log())

    def test_expired_resume_relists_without_stale_routes(self):
        # Keep watches failing while the cluster changes, then compact: the resume gets 410.
        self.admin("/faults/fail", {"count": 100000, "code": 500, "match": "watch=true"})
        self.admin("/faults/drop-watches", {"abrupt": False})
        self.kubectl("delete", "loadbalancer", "two")
        self.apply(service_and_slice(self.b))
        self.admin("/faults/compact", method="POST")
        self.admin("/faults/clear", method="POST")
        wait_until(lambda: "watch expired (410)" in self.controller.log(), timeout=40, what="a relist after 410")
        wait_until(lambda: self.listener_names() == ["http-%d" % self.p1], what="deleted LoadBalancer gone")
        wait_until(lambda: not port_open(self.p2), what="no stale listener on :%d" % self.p2)
        wait_until(lambda: self.fetch(self.p1) == "b", what="missed endpoint change applied")
        # And the watch works again afterwards.
        self.apply(service_and_slice(self.a))
        wait_until(lambda: self.fetch(self.p1) == "a", what="live events after the relist")

    def test_bursts_of_500_and_429_converge(self):
        # Faults aimed at the controller's own requests (watches, cluster-wide lists, status
        # writes), so kubectl keeps working. Watches fail with 500 until every reflector has
        # seen one, so all six are backing off when the cluster changes and the store is
        # compacted: each resume then gets 410, and the relists' pages get 429 + Retry-After,
        # and the first status writes fail. (Letting the 500s run out on their own raced the
        # compaction: a reflector back before it needs no relist, and the CI once ended the
        # test before the one still backing off came back.)
        start = len(self.controller.log())
        self.admin("/faults/fail", {"count": 100000, "code": 500, "match": "watch=true"})
        self.admin("/faults/drop-watches", {"abrupt": True})
        resources = ("services", "endpointslices", "ingresses", "ingressclasses", "secrets", "loadbalancers")
        wait_until(lambda: all("watch failed, retrying resource=%s code=500" % r in self.controller.log()[start:]
                               for r in resources), timeout=30, what="every watch failing with 500")
        self.apply(service_and_slice(self.b))
        self.kubectl("delete", "loadbalancer", "two")
        self.apply(lb_yaml("one", self.p1, service_backend(), extra_route="""\
    - name: api
      listener: web
      match: {path: {type: Prefix, value: /api}}
      backends:
        - endpoints: [{address: 127.0.0.1, port: %d}]
""" % self.a))  # generation 2: a status write is due
        self.admin("/faults/fail", {"count": 12, "code": 429, "retryAfter": 1, "match": "limit="})
        self.admin("/faults/fail", {"count": 3, "code": 500, "match": "/status"})
        self.admin("/faults/compact", method="POST")
        self.assertEqual(self.admin("/faults/remove", {"match": "watch=true"}), {"removed": 1})
        wait_until(lambda: self.fetch(self.p1) == "b", timeout=60, what="convergence after 500s and 429s")
        wait_until(lambda: not port_open(self.p2), timeout=60, what="delete applied after the burst")
        self.wait_condition("one", "Programmed", "True", timeout=30)
        log = self.controller.log()[start:]
        # Converging took a relist (every resume was 410), whose first page met a 429.
        self.assertIn("watch expired (410)", log)
        self.assertIn("relisting", log)
        self.assertIn("code=429", log)
        self.assertIn("writing status failed", log)
        self.assertNotIn(TOKEN, log)  # debug logging, many failures: still no credential
        # The status write for generation 2 succeeded, so every injected status 500 was met
        # first; the 429s were met at least once (how often depends on the relists' order).
        faults = self.admin("/faults")["fail"]
        self.assertEqual([f for f in faults if f["code"] != 429], [], "every injected 500 was met")
        self.assertTrue(all(f["count"] < 12 for f in faults if f["code"] == 429), faults)


class CrdDeleted(KubeTestCase):
    """The LoadBalancer CRD deleted while the controller's watch is down: no DELETED event ever
    comes, every resume and relist is a 404. After --kube-gone-after of unbroken 404s the
    LoadBalancers stop routing (audit3-k8s #1: they used to route until the CRD came back)."""

    def test_loadbalancers_of_a_deleted_crd_stop_routing(self):
        a = self.start_backend("a")
        port = free_port()
        self.apply(service_and_slice(a))
        self.apply(lb_yaml("one", port, service_backend()))
        self.start_kube_controller(extra=["--kube-gone-after", "2s"])
        self.start_dataplane(["--advertise-address", "127.0.0.1"])
        wait_until(lambda: self.fetch(port) == "a", what="routing")
        self.admin("/faults/fail", {"count": 100000, "code": 500, "match": "loadbalancers?"})
        self.admin("/faults/drop-watches", {"abrupt": False})
        self.kubectl("delete", "crd", "loadbalancers.doorman.dev")
        self.admin("/faults/clear", method="POST")
        wait_until(lambda: not port_open(port), timeout=60, what="the deleted CRD's listener closed")
        self.assertIn("CRD deleted?", self.controller.log())
        self.assertEqual(self.listener_names(), [])
        # The CRD back, the LoadBalancer applied again: it routes again (the reflector kept listing).
        self.kubectl("apply", "-f", CRD)
        wait_until(lambda: self.kubectl("get", "loadbalancers", check=False).returncode == 0, what="CRD served")
        self.apply(lb_yaml("one", port, service_backend()))
        wait_until(lambda: self.fetch(port) == "a", timeout=60, what="routing again")


class Credentials(KubeTestCase):
    def test_token_file_is_reread_when_it_changes(self):
        # A kubeconfig whose user reads its token from a file holding a wrong token: every
        # request gets 401 until the file is rewritten (service-account token rotation).
        token_file = os.path.join(self.tmp, "token")
        with open(token_file, "w") as f:
            f.write("not-the-token\n")
        with open(self.kubeconfig) as f:
            cfg = json.load(f)
        cfg["users"][0]["user"] = {"tokenFile": token_file}
        rotated = os.path.join(self.tmp, "kubeconfig-tokenfile")
        with open(rotated, "w") as f:
            json.dump(cfg, f)
        port = free_port()
        self.apply(lb_yaml("shop", port, "        - endpoints: [{address: 127.0.0.1, port: 9}]\n"))
        ctl = self.start_kube_controller(extra=["--log-level", "debug"], wait_ready=False, kubeconfig=rotated)
        wait_until(lambda: "code=401" in ctl.log(), what="401s with the wrong token")
        self.assertEqual(http_get("http://127.0.0.1:%d/readyz" % ctl.metrics_port)[0], 503)
        with open(token_file + ".new", "w") as f:
            f.write(TOKEN + "\n")
        os.replace(token_file + ".new", token_file)
        wait_until(lambda: http_get("http://127.0.0.1:%d/readyz" % ctl.metrics_port)[0] == 200, timeout=40,
                   what="ready after the token file changed")
        self.wait_condition("shop", "Accepted", "True")
        self.assertIn("bearer token file changed", ctl.log())
        self.assertNotIn(TOKEN, ctl.log())
        self.assertNotIn("not-the-token", ctl.log())


class LeaderElection(KubeTestCase):
    FLAGS = ["--leader-elect", "--leader-elect-namespace", "doorman-system",
             "--leader-elect-lease-duration", "3s", "--leader-elect-renew-deadline", "2s",
             "--leader-elect-retry-period", "500ms"]

    def holder(self):
        lease = self.get("lease", "doorman-controller", ns="doorman-system")
        return (lease or {}).get("spec", {}).get("holderIdentity") or None

    def lease_time(self, field="acquireTime"):
        """The Lease's spec.acquireTime (written by a new holder) or renewTime, as time.time()
        seconds (the controllers and the test share the machine's clock)."""
        stamp = self.get("lease", "doorman-controller", ns="doorman-system")["spec"][field]
        return datetime.datetime.strptime(stamp.replace("Z", "+0000"), "%Y-%m-%dT%H:%M:%S.%f%z").timestamp()

    def two_replicas_and_shop(self):
        """Two controller replicas (ctl-a, ctl-b) and an accepted LoadBalancer "shop" on a free
        port; returns (port, leader, follower)."""
        self.kubectl("create", "namespace", "doorman-system")
        port = free_port()
        self.apply(lb_yaml("shop", port, "        - endpoints: [{address: 127.0.0.1, port: 9}]\n"))
        self.start_kube_controller("ctl-a", self.FLAGS)
        self.start_kube_controller("ctl-b", self.FLAGS)
        leader = wait_until(self.holder, what="a Lease holder")
        follower = "ctl-b" if leader == "ctl-a" else "ctl-a"
        self.wait_condition("shop", "Accepted", "True")
        return port, leader, follower

    def test_identity_defaults_to_the_pod_name(self):
        # Without --pod-name: $POD_NAME, which deploy/ and the chart set from the downward API.
        self.kubectl("create", "namespace", "doorman-system")
        metrics_port = free_port()
        self.spawn("podname", [CONTROLLER, "--kubeconfig", self.kubeconfig, "--grpc-listen", "127.0.0.1:%d" % free_port(),
                               "--metrics-listen", "127.0.0.1:%d" % metrics_port] + self.FLAGS,
                   env=dict(os.environ, POD_NAME="doorman-controller-7d9f6-x2k4q"))
        wait_until(lambda: http_get("http://127.0.0.1:%d/readyz" % metrics_port)[0] == 200, what="/readyz")
        self.assertEqual(self.debug_status(metrics_port)["kubernetes"]["identity"], "doorman-controller-7d9f6-x2k4q")
        wait_until(lambda: self.holder() == "doorman-controller-7d9f6-x2k4q", what="the Lease held by the pod name")

    def test_one_writer_takeover_and_release(self):
        a_port, leader, follower = self.two_replicas_and_shop()
        # Both serve the same snapshot; only the leader writes.
        versions = {n: self.debug_snapshot(p.metrics_port)["version"] for n, p in self.controllers.items()}
        self.assertEqual(len(set(versions.values())), 1, versions)
        self.apply(lb_yaml("shop", a_port, "        - endpoints: [{address: 127.0.0.1, port: 10}]\n"))
        self.wait_condition("shop", "Accepted", "True")
        self.assertGreaterEqual(len(self.status_writes("(%s)" % leader)), 2)
        self.assertEqual(self.status_writes("(%s)" % follower), [])
        lm = http_get("http://127.0.0.1:%d/metrics" % self.controllers[leader].metrics_port)[2].decode()
        fm = http_get("http://127.0.0.1:%d/metrics" % self.controllers[follower].metrics_port)[2].decode()
        self.assertEqual(metric_value(lm, "doorman_controller_leader"), 1)
        self.assertEqual(metric_value(fm, "doorman_controller_leader"), 0)

        # SIGKILL the leader: no release, the follower takes over once the lease runs out.
        renewed_at = self.lease_time("renewTime")  # the leader renews after this, or never again
        killed_at = time.time()
        self.controllers[leader].stop(sig=signal.SIGKILL)
        wait_until(lambda: self.holder() == follower, timeout=10, interval=0.1, what="takeover by " + follower)
        # Lease duration, plus at most a renew period seen late and a jittered retry period; and
        # not before the last renewal seen could have run out: never a second leader while the
        # first one's lease was still valid.
        self.assertLess(self.lease_time() - killed_at, 3.0 + 2.0)
        self.assertGreaterEqual(self.lease_time() - renewed_at, 3.0)
        self.apply(lb_yaml("shop", a_port, "        - endpoints: [{address: 127.0.0.1, port: 11}]\n"))
        self.wait_condition("shop", "Accepted", "True")
        self.assertGreaterEqual(len(self.status_writes("(%s)" % follower)), 1)

        # SIGTERM releases the Lease: a newcomer takes over well before the lease would expire.
        self.start_kube_controller("ctl-c", self.FLAGS)
        time.sleep(1.0)
        self.assertEqual(self.holder(), follower)
        stopped_at = time.time()
        self.assertEqual(self.controllers[follower].stop(sig=signal.SIGTERM), 0)
        wait_until(lambda: self.holder() == "ctl-c", timeout=10, interval=0.05, what="takeover by ctl-c")
        # Released: taken within a retry period or two of the stop, not after the 3 s lease.
        self.assertLess(self.lease_time() - stopped_at, 2.5)
        self.apply(lb_yaml("shop", a_port, "        - endpoints: [{address: 127.0.0.1, port: 12}]\n"))
        self.wait_condition("shop", "Accepted", "True")
        self.assertGreaterEqual(len(self.status_writes("(ctl-c)")), 1)


    def test_leader_counts_dataplanes_of_every_replica(self):
        # The shipped Deployment runs 2 replicas and dataplanes spread over them: the leader must
        # count every replica's dataplanes (their dataplane-view Leases), not only its own.
        port, leader, follower = self.two_replicas_and_shop()
        dps = {}
        for name, ctl, ip in (("dp-leader", leader, "127.0.0.2"), ("dp-follower", follower, "127.0.0.3")):
            mport = free_port()
            dps[name] = self.spawn(name, [
                DATAPLANE, "--controller", "127.0.0.1:%d" % self.controllers[ctl].grpc_port,
                "--node-name", name, "--advertise-address", ip, "--bind-address", ip,
                "--state-dir", os.path.join(self.tmp, name), "--metrics-listen", "127.0.0.1:%d" % mport])

        def status_is(ready, programmed, addresses):
            def ok():
                st = (self.get("loadbalancer", "shop") or {}).get("status") or {}
                got = (st.get("dataplanes"), sorted(a.get("value") for a in st.get("addresses", [])))
                return st if got == ({"ready": ready, "programmed": programmed}, addresses) else None
            return ok
        st = wait_until(status_is(2, 2, ["127.0.0.2", "127.0.0.3"]), timeout=20, interval=0.1,
                        what="the leader counting both replicas' dataplanes")
        self.assertEqual(self.condition({"status": st}, "Programmed")["status"], "True")
        views = self.kubectl("get", "leases", "-n", "doorman-system", "-l", "doorman.dev/dataplane-view=true",
                             "-o", "json")
        self.assertEqual(sorted(i["spec"]["holderIdentity"] for i in json.loads(views.stdout)["items"]),
                         ["ctl-a", "ctl-b"])
        self.assertEqual(self.status_writes("(%s)" % follower), [])

        # The follower's dataplane goes away: its view shrinks, the leader's count follows well
        # within the lease duration (3 s).
        killed_at = time.time()
        dps["dp-follower"].stop(sig=signal.SIGKILL)
        wait_until(status_is(1, 1, ["127.0.0.2"]), timeout=10, interval=0.1, what="count drops to 1")
        # Timed by the leader's status write that carried the new count (the sim logs status
        # bodies), not by kubectl's polls, nor by any other write in between.
        count_write = self.status_write_after("(%s)" % leader, "shop", killed_at,
                                              carrying=lambda st: (st.get("dataplanes") or {}).get("ready") == 1)
        self.assertLess(count_write - killed_at, 3.0)

        # SIGTERM deletes the follower's view Lease.
        self.assertEqual(self.controllers[follower].stop(sig=signal.SIGTERM), 0)
        self.assertIsNone(self.get("lease", "doorman-controller-view-" + follower, ns="doorman-system"))

    def test_a_leader_cut_off_from_the_api_steps_down_before_another_takes_over(self):
        # Only the leader's requests hang (20 s each): it cannot renew, the follower still sees
        # the API. The leader must stop leading (renew deadline, 2 s) before the follower may
        # take over (lease duration, 3 s, after the last renewal it saw): never two leaders.
        port, leader, follower = self.two_replicas_and_shop()

        def gauge(name):
            text = http_get("http://127.0.0.1:%d/metrics" % self.controllers[name].metrics_port)[2].decode()
            return metric_value(text, "doorman_controller_leader")
        wait_until(lambda: gauge(leader) == 1 and gauge(follower) == 0, what="one leader gauge at 1")
        self.admin("/faults/latency", {"ms": 20000, "userAgent": "(%s)" % leader})
        try:
            seen = {"down": None, "up": None, "both": []}

            def poll():
                # The follower's gauge is read first: a 1 there with the leader's still 1 after
                # it is an overlap (the leader's cannot have risen again in between).
                up = gauge(follower) == 1
                now = time.time()
                down = gauge(leader) == 0
                if up and not down:
                    seen["both"].append(now)
                if down and seen["down"] is None:
                    seen["down"] = now
                if up and seen["up"] is None:
                    seen["up"] = now
                return up
            wait_until(poll, timeout=15, interval=0.05, what="takeover by " + follower)
            self.assertEqual(seen["both"], [], "two leaders at once")
            self.assertIsNotNone(seen["down"])
            self.assertLessEqual(seen["down"], seen["up"])
            wait_until(lambda: self.holder() == follower, what="the Lease held by " + follower)
            # The new leader writes status; the old one starts no status write once it stepped down.
            self.apply(lb_yaml("shop", port, "        - endpoints: [{address: 127.0.0.1, port: 10}]\n"))
            self.status_write_after("(%s)" % follower, "shop", seen["up"])
            self.assertEqual([r for r in self.status_writes("(%s)" % leader) if r["time"] >= seen["down"]], [])
        finally:
            self.admin("/faults/clear", method="POST")

    def test_leader_gauge_drops_when_the_lease_cannot_be_renewed(self):
        # The API hangs (every request takes 20 s): the leader stops writing once the renew
        # deadline passes, and doorman_controller_leader says so then, not when the hung Lease
        # request finally returns.
        self.kubectl("create", "namespace", "doorman-system")
        self.start_kube_controller("ctl-a", self.FLAGS)
        wait_until(self.holder, what="a Lease holder")
        gauge = lambda: metric_value(http_get("http://127.0.0.1:%d/metrics" % self.controllers["ctl-a"].metrics_port)[2]  # noqa: E731
                                     .decode(), "doorman_controller_leader")
        wait_until(lambda: gauge() == 1, what="the leader gauge at 1")
        self.admin("/faults/latency", {"ms": 20000})
        try:
            hung_at = time.monotonic()
            wait_until(lambda: gauge() == 0, timeout=10, interval=0.1, what="the leader gauge at 0")
            self.assertLess(time.monotonic() - hung_at, 2.0 + 0.5 + 1.5)  # renew deadline + a status pass + slack
        finally:
            self.admin("/faults/clear", method="POST")

    def test_a_replica_started_while_an_object_is_invalid_routes_its_last_good_version(self):
        # The shipped Deployment runs 2 replicas: one (re)started while an object is invalid must
        # route what the others route (the leader's last-good Lease), not drop the object.
        self.kubectl("create", "namespace", "doorman-system")
        port = free_port()
        good = lb_yaml("shop", port, "        - endpoints: [{address: 127.0.0.1, port: 9}]\n")
        self.apply(good)
        self.start_kube_controller("ctl-a", self.FLAGS)
        wait_until(self.holder, what="a Lease holder")
        self.wait_condition("shop", "Accepted", "True")
        routes = lambda ctl: sorted(r["name"] for r in  # noqa: E731
                                    self.debug_snapshot(self.controllers[ctl].metrics_port)["snapshot"].get("routes", []))
        self.assertEqual(routes("ctl-a"), ["default/shop/app"])
        self.apply(good.replace("listener: web", "listener: nope"))
        self.wait_condition("shop", "Accepted", "False")
        lease = wait_until(lambda: self.get("lease", "doorman-controller-last-good", ns="doorman-system"),
                           what="the last-good Lease")
        saved = json.loads(lease["metadata"]["annotations"]["doorman.dev/last-good"])
        self.assertEqual(list(saved), ["LoadBalancer/default/shop"])
        self.assertNotIn("managedFields", saved["LoadBalancer/default/shop"]["metadata"])
        # A second replica, and the first one restarted: both route the last good version.
        self.start_kube_controller("ctl-b", self.FLAGS)
        self.assertEqual(routes("ctl-b"), ["default/shop/app"])
        self.assertEqual(self.debug_snapshot(self.controllers["ctl-b"].metrics_port)["version"],
                         self.debug_snapshot(self.controllers["ctl-a"].metrics_port)["version"])
        self.controllers["ctl-a"].stop(sig=signal.SIGKILL)
        self.start_kube_controller("ctl-a2", self.FLAGS)
        self.assertEqual(routes("ctl-a2"), ["default/shop/app"])
        # A replica whose start-up read of the Lease fails tries again (and writes nothing
        # meanwhile, were it the leader): it routes the object once the read succeeds.
        self.admin("/faults/fail", {"count": 2, "code": 500, "method": "GET", "match": "doorman-controller-last-good"})
        self.start_kube_controller("ctl-d", self.FLAGS)
        self.assertEqual(routes("ctl-d"), [])
        wait_until(lambda: routes("ctl-d") == ["default/shop/app"], timeout=15, what="ctl-d adopts after its retry")
        # Deleted and created again (a new uid), still invalid: the saved version is not adopted.
        self.kubectl("delete", "loadbalancer", "shop")
        self.apply(good.replace("listener: web", "listener: nope"))
        wait_until(lambda: routes("ctl-b") == [], what="ctl-b drops the re-created invalid object")
        self.start_kube_controller("ctl-c", self.FLAGS)
        self.assertEqual(routes("ctl-c"), [])
        wait_until(lambda: json.loads((self.get("lease", "doorman-controller-last-good", ns="doorman-system") or {})
                                      .get("metadata", {}).get("annotations", {}).get("doorman.dev/last-good", "null")) == {},
                   what="the leader clears the Lease")


class Robustness(KubeTestCase):
    """One object whose status writes keep failing is backed off (and logged once) while the
    others are written promptly; SIGTERM is bounded when the API server stops answering."""

    def controller_log_lines(self, needle):
        return [l for l in self.controller.log().splitlines() if needle in l]

    def test_failing_status_write_is_backed_off_without_delaying_others(self):
        backend = self.start_backend("a")
        good, bad = free_port(), free_port()
        endpoints = "        - endpoints: [{address: 127.0.0.1, port: %d}]\n" % backend
        # RBAC-like: every /status write of "bad" is refused, from the start.
        self.admin("/faults/fail", {"count": 1000000, "code": 403, "match": "/loadbalancers/bad/status",
                                    "message": "loadbalancers.doorman.dev \"bad\" is forbidden"})
        self.apply(lb_yaml("bad", bad, endpoints))
        self.apply(lb_yaml("good", good, endpoints))
        self.start_kube_controller()
        self.start_dataplane(["--advertise-address", "127.0.0.1"])
        self.wait_condition("good", "Programmed", "True")
        ua = "(controller)"

        def bad_writes():
            # By path: a request refused by an injected fault is logged before it is routed.
            return [r for r in self.requests_by(ua)
                    if r["method"] in UA_STATUS_WRITE and r["path"].endswith("/loadbalancers/bad/status")]
        wait_until(lambda: len(bad_writes()) >= 1, what="a first status write of bad")
        first_failure = time.monotonic()
        # Over 10 s, a retry every 500 ms would be ~20 writes; backoff (0.5 s doubling, jittered)
        # allows at most ~6 from the first failure, a few more if the desired status changed.
        start = len(bad_writes())
        time.sleep(10)
        window = len(bad_writes()) - start
        if os.environ.get("DOORMAN_IT_VERBOSE"):
            print("failing status writes in 10 s: %d" % window, file=sys.stderr)
        self.assertLessEqual(window, 6, "failing status writes are backed off: %d in 10 s" % window)
        self.assertGreaterEqual(len(bad_writes()), 2, "the failing write is still retried")
        # Logged once per distinct error, not once per attempt.
        warned = self.controller_log_lines("writing status failed")
        self.assertGreaterEqual(len(warned), 1)
        self.assertLessEqual(len(warned), 2, "\n".join(warned))
        self.assertTrue(all("default/bad" in l for l in warned), warned)
        self.assertNotIn(TOKEN, self.controller.log())

        # Another object's new status is written promptly meanwhile.
        before_apply = time.time()
        self.apply(lb_yaml("good", good, endpoints, extra_route="""\
    - name: api
      listener: web
      match: {path: {type: Prefix, value: /api}}
      backends:
        - endpoints: [{address: 127.0.0.1, port: %d}]
""" % backend))
        # From kubectl's write of the change (the sim's log, not kubectl's exit) to the status
        # write: stuck behind bad's backoff (seconds by now) it would take longer than this.
        changed_at = max(r["time"] for r in self.requests_by("kubectl") if r["time"] >= before_apply
                         and r["method"] in ("PATCH", "PUT", "POST") and r["path"].endswith("/loadbalancers/good"))
        self.assertLess(self.status_write_after(ua, "good", changed_at) - changed_at, 3.0)
        obj = self.wait_condition("good", "Programmed", "True", timeout=10)
        self.assertEqual(obj["metadata"]["generation"], 2)

        # The API accepts the write again: bad's status follows within the current backoff. The
        # n-th delay (0.5 s doubling, jitter in [0.5, 1)) is at most 2x the time since the first
        # failure plus 0.5 s, so the retry comes within 2x the failing time (+ margin).
        self.admin("/faults/clear", method="POST")
        failing_for = time.monotonic() - first_failure
        self.wait_condition("bad", "Programmed", "True", timeout=2 * failing_for + 10)
        wait_until(lambda: self.controller_log_lines("writing status succeeded after failures"),
                   what="the recovery logged")

    def test_sigterm_is_bounded_when_the_api_server_hangs(self):
        self.kubectl("create", "namespace", "doorman-system")
        self.apply(lb_yaml("shop", free_port(), "        - endpoints: [{address: 127.0.0.1, port: 9}]\n"))
        self.start_kube_controller(extra=LeaderElection.FLAGS)
        wait_until(lambda: (self.get("lease", "doorman-controller", ns="doorman-system") or {})
                   .get("spec", {}).get("holderIdentity") == "controller", what="the controller leads")
        self.wait_condition("shop", "Accepted", "True")
        # From now on the API server accepts connections and requests but answers none of them.
        mark = self.admin("/requests")["requests"]
        since = mark[-1]["seq"] if mark else 0
        self.admin("/faults/latency", {"ms": 120000})

        def hanging():
            rs = self.admin("/requests?since=%d&userAgent=%s" % (since, urllib.request.quote("(controller)")))["requests"]
            # In flight: a non-watch request (lease renewal, view list/publish) with no answer yet.
            return [r for r in rs if r.get("status") is None and "watch=true" not in (r.get("query") or "")]
        wait_until(lambda: len(hanging()) >= 1, timeout=10, what="a controller request hanging")
        stopped_at = time.monotonic()
        os.killpg(self.controller.p.pid, signal.SIGTERM)
        try:
            rc = self.controller.p.wait(timeout=15)
        except subprocess.TimeoutExpired:
            rc = None
        elapsed = time.monotonic() - stopped_at
        if os.environ.get("DOORMAN_IT_VERBOSE"):
            print("SIGTERM took %.2f s\n%s" % (elapsed, self.controller.log()[-3000:]), file=sys.stderr)
        self.admin("/faults/clear", method="POST")
        self.assertEqual(rc, 0, "the controller exits cleanly on SIGTERM (log: %s)" % self.controller.log()[-2000:])
        # 2 s per shutdown request, 4 s in all, plus the rest of shutdown.
        self.assertLess(elapsed, 6.0, "SIGTERM took %.1f s" % elapsed)
        self.assertIn("stopped", self.controller.log())
        self.assertNotIn(TOKEN, self.controller.log())


class ServicesAndIngresses(KubeTestCase):
    """Service type LoadBalancer (L4) and Ingress (L7): run when their translation exists."""

    def setUp(self):
        super().setUp()
        self.a = self.start_backend("a")
        self.b = self.start_backend("b")

    def skip_unless_translated(self, kind, name):
        def status():
            return self.object_status(kind, name)
        st = wait_until(status, what="%s %s in /debug/status" % (kind, name))
        if st["reason"] == "NotImplemented":
            self.skipTest("%s translation is not implemented in this build (controller/translate)" % kind)
        return st

    def test_service_type_loadbalancer(self):
        port = free_port()
        self.apply(service_and_slice(self.a, svc="tcp", port=port, extra_spec="""\
  type: LoadBalancer
  loadBalancerClass: doorman.dev/lb
"""))
        self.start_kube_controller()
        self.start_dataplane(["--advertise-address", "127.0.0.1"])
        self.skip_unless_translated("Service", "tcp")
        wait_until(lambda: self.fetch(port) == "a", what="L4 listener forwarding to backend a")
        wait_until(lambda: ((self.get("service", "tcp") or {}).get("status", {}).get("loadBalancer", {})
                            .get("ingress") == [{"ip": "127.0.0.1", "ipMode": "Proxy"}]), what="Service status address")
        self.apply(service_and_slice(self.b, svc="tcp", port=port, extra_spec="""\
  type: LoadBalancer
  loadBalancerClass: doorman.dev/lb
"""))
        wait_until(lambda: self.fetch(port) == "b", what="L4 listener re-routed to backend b")
        self.kubectl("delete", "service", "tcp")
        wait_until(lambda: not port_open(port), what="listener removed with the Service")

    def test_watch_namespace_sees_only_its_namespace(self):
        # --watch-namespace: namespaced kinds are listed and watched in that namespace only (a
        # Role there is enough); IngressClasses stay cluster-wide. A Service elsewhere is not served.
        self.kubectl("create", "namespace", "team-a")
        inside, outside = free_port(), free_port()
        lb_spec = "  type: LoadBalancer\n  loadBalancerClass: doorman.dev/lb\n"
        self.apply(service_and_slice(self.a, svc="tcp", port=inside, extra_spec=lb_spec).replace(
            "namespace: default", "namespace: team-a"))
        self.apply(service_and_slice(self.b, svc="tcp", port=outside, extra_spec=lb_spec))
        # A cluster-scoped object's Warning Event goes to "default" (the API server allows no
        # other namespace for it): the chart grants Events there too.
        self.apply("apiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata: {name: doorman}\n"
                   "spec:\n  controller: doorman.dev/ingress-controller\n"
                   "  parameters: {apiGroup: example.com, kind: Params, name: p}\n")
        self.admin("/reset-requests", method="POST")
        self.start_kube_controller(extra=["--watch-namespace", "team-a"])
        self.start_dataplane(["--advertise-address", "127.0.0.1"])
        wait_until(lambda: self.fetch(inside) == "a", what="the Service in team-a served")
        self.assertFalse(port_open(outside), "a Service outside --watch-namespace was served")
        self.assertEqual([o["namespace"] for o in self.debug_status()["objects"] if o["kind"] == "Service"], ["team-a"])
        reads = [r for r in self.requests_by("(controller)") if r["verb"] in ("list", "watch")]
        by_resource = {}
        for r in reads:
            by_resource.setdefault(r["resource"], set()).add(r.get("namespace") or "")
        self.assertEqual(by_resource.get("ingressclasses"), {""}, by_resource)  # cluster-scoped
        for res in ("services", "endpointslices", "ingresses", "secrets", "loadbalancers"):
            self.assertEqual(by_resource.get(res), {"team-a"}, (res, by_resource))
        event = wait_until(lambda: self.warning_event("doorman"), what="the IngressClass's Event in default")
        self.assertEqual((event["involvedObject"]["kind"], event["reason"]), ("IngressClass", "FieldIgnored"), event)
        # Every other write stays in team-a: what the chart's Roles allow (events only in default).
        writes = {(r.get("namespace"), r["resource"]) for r in self.requests_by("(controller)")
                  if r["verb"] not in ("get", "list", "watch") and r["resource"] not in ("leases",)}
        self.assertEqual({ns for ns, res in writes if res != "events"}, {"team-a"}, writes)
        self.assertLessEqual({ns for ns, res in writes if res == "events"}, {"team-a", "default"}, writes)

    def test_two_installs_split_the_objects_by_class_and_selector(self):
        # Two controllers on one API (an edge and an internal install, docs/operations.md "Several
        # installs"): each claims only its Services (--load-balancer-class), LoadBalancers
        # (--loadbalancer-selector, applied by the API server) and IngressClasses/Ingresses
        # (--controller-class). Before these flags both claimed everything (helper-116).
        internal = "example.com/internal"
        ports = [free_port() for _ in range(2)]
        for svc, cls, port, backend in (("tcp-edge", "doorman.dev/lb", ports[0], self.a),
                                        ("tcp-inside", internal, ports[1], self.b)):
            self.apply(service_and_slice(backend, svc=svc, port=port,
                                         extra_spec="  type: LoadBalancer\n  loadBalancerClass: %s\n" % cls))
        static = "        - {endpoints: [{address: 127.0.0.1, port: %d}]}\n"
        self.apply(lb_yaml("lb-edge", free_port(), static % self.a))
        self.apply(lb_yaml("lb-inside", free_port(), static % self.b).replace(
            "namespace: default}", "namespace: default, labels: {doorman.dev/edge: internal}}"))
        for cls, controller in (("doorman", "doorman.dev/ingress-controller"), ("internal", internal)):
            self.apply("apiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata: {name: %s}\n"
                       "spec: {controller: %s}\n---\n"
                       "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: ing-%s, namespace: default}\n"
                       "spec:\n  ingressClassName: %s\n  defaultBackend: {service: {name: tcp-edge, port: {number: %d}}}\n"
                       % (cls, controller, cls, cls, ports[0]))
        edge = self.start_kube_controller(name="edge", extra=["--loadbalancer-selector", "!doorman.dev/edge",
                                                              "--ingress-http-port", str(free_port()),
                                                              "--ingress-https-port", str(free_port())])
        inside = self.start_kube_controller(name="inside", extra=[
            "--controller-class", internal, "--load-balancer-class", internal,
            "--loadbalancer-selector", "doorman.dev/edge=internal", "--ingress-class", "internal",
            "--ingress-http-port", str(free_port()), "--ingress-https-port", str(free_port())])

        def claimed(p):
            return {(o["kind"], o["name"]) for o in self.debug_status(p.metrics_port)["objects"]}
        want = {edge: {("Service", "tcp-edge"), ("LoadBalancer", "lb-edge"), ("IngressClass", "doorman"),
                       ("Ingress", "ing-doorman")},
                inside: {("Service", "tcp-inside"), ("LoadBalancer", "lb-inside"), ("IngressClass", "internal"),
                         ("Ingress", "ing-internal")}}
        for p, objects in want.items():
            wait_until(lambda: claimed(p) == objects or None, what="the objects of " + p.name)
        # The selector reached the API server (the internal one lists and watches only its own).
        lb_reads = [r for r in self.requests_by("(inside)") if r["resource"] == "loadbalancers"
                    and r["verb"] in ("list", "watch")]
        self.assertTrue(lb_reads)
        for r in lb_reads:
            self.assertIn("labelSelector=doorman.dev%2Fedge%3Dinternal", r["query"], r)
        # A second pass after the start: relabelling moves a LoadBalancer to the other install.
        self.kubectl("label", "loadbalancer", "lb-edge", "doorman.dev/edge=internal")
        wait_until(lambda: ("LoadBalancer", "lb-edge") in claimed(inside) or None, what="lb-edge moved inside")
        wait_until(lambda: ("LoadBalancer", "lb-edge") not in claimed(edge) or None, what="lb-edge left the edge")
        # Without the chart, a second install that changes --controller-class but not
        # --ingress-class shares the legacy annotation's class with the default install: said at
        # start-up (helper-123: both claimed such Ingresses and fought over their status).
        warning = "--ingress-class is still \"doorman\""
        self.assertNotIn(warning, inside.log())
        self.assertNotIn(warning, edge.log())
        third = self.start_kube_controller(name="third", extra=["--controller-class", "example.com/third",
                                                                "--watch-namespace", "nothing-here"])
        wait_until(lambda: warning in third.log() or None, what="the shared legacy class warning")
        third.stop()

    def test_a_service_whose_port_is_held_gets_a_warning_event(self):
        # A Service has no condition to say that a dataplane could not open its port: a
        # ListenerNotServed Warning Event says it, naming the node.
        port = free_port()
        holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        holder.bind(("127.0.0.1", port))
        holder.listen(1)
        self.addCleanup(holder.close)
        self.apply(service_and_slice(self.a, svc="tcp", port=port, extra_spec="""\
  type: LoadBalancer
  loadBalancerClass: doorman.dev/lb
"""))
        self.start_kube_controller()
        self.start_dataplane(["--advertise-address", "127.0.0.1"])
        event = wait_until(lambda: self.warning_event("tcp"), what="the Service's Warning Event")
        self.assertEqual(event["reason"], "ListenerNotServed", event)
        self.assertIn("could not be opened on it-node", event["message"])

    def test_ingress(self):
        http_port = free_port()
        self.apply(service_and_slice(self.a))
        self.apply("""\
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: {name: doorman}
spec: {controller: doorman.dev/ingress-controller}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: site, namespace: default}
spec:
  ingressClassName: doorman
  rules:
    - host: app.local
      http:
        paths:
          - {path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}
""")
        self.start_kube_controller(extra=["--ingress-http-port", str(http_port)])
        self.start_dataplane(["--advertise-address", "127.0.0.1"])
        self.skip_unless_translated("Ingress", "site")
        wait_until(lambda: self.fetch(http_port) == "a", what="Ingress routing to backend a")
        wait_until(lambda: ((self.get("ingress", "site") or {}).get("status", {}).get("loadBalancer", {})
                            .get("ingress") == [{"ip": "127.0.0.1"}]), what="Ingress status address")


if __name__ == "__main__":
    unittest.main(verbosity=2)
