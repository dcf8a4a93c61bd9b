#!/usr/bin/env python3
"""Tests of the Kubernetes API test server, with the real kubectl and with
direct HTTPS requests.

    python3 tests/kube-apiserver-sim/test_apiserver.py [-v]

One server (subprocess, --gen-certs in a temp dir) serves the whole module;
tests use their own namespaces or names. Every wait is a bounded poll or a
socket read with a timeout: nothing here sleeps a fixed time.
"""

import base64
import http.client
import json
import os
import select
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.parse
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
SERVER = os.path.join(HERE, "apiserver.py")
KUBECTL = shutil.which("kubectl")
IO_TIMEOUT = 10.0

CRD_YAML = """\
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: loadbalancers.doorman.dev
spec:
  group: doorman.dev
  scope: Namespaced
  names:
    kind: LoadBalancer
    listKind: LoadBalancerList
    plural: loadbalancers
    singular: loadbalancer
    shortNames: [dlb]
    categories: [doorman]
  versions:
  - name: v1alpha1
    served: true
    storage: true
    subresources:
      status: {}
    additionalPrinterColumns:
    - {name: Ports, type: string, jsonPath: ".spec.listeners[*].port"}
    - {name: Accepted, type: string, jsonPath: '.status.conditions[?(@.type=="Accepted")].status'}
    - {name: Age, type: date, jsonPath: .metadata.creationTimestamp}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              listeners:
                type: array
                items:
                  type: object
                  required: [name, port]
                  properties:
                    name: {type: string}
                    port: {type: integer, minimum: 1, maximum: 65535}
                    protocol: {type: string, enum: [TCP, UDP, TLS, HTTP, HTTPS], default: TCP}
          status:
            type: object
            properties:
              observedGeneration: {type: integer}
              conditions:
                type: array
                items:
                  type: object
                  x-kubernetes-preserve-unknown-fields: true
"""

LB_YAML = """\
apiVersion: doorman.dev/v1alpha1
kind: LoadBalancer
metadata:
  name: shop
  namespace: default
spec:
  listeners:
  - {name: web, port: 8080, protocol: HTTP}
{extra}
---
apiVersion: v1
kind: Service
metadata:
  name: shop-svc
  namespace: default
  labels: {app: shop}
spec:
  type: LoadBalancer
  loadBalancerClass: doorman.dev/lb
  selector: {app: shop}
  ports:
  - {name: http, port: 80, targetPort: {target}}
"""


def wait_until(predicate, timeout=IO_TIMEOUT, what="condition"):
    """Poll ``predicate`` (backing off from 10 ms to 200 ms) until truthy."""
    deadline = time.monotonic() + timeout
    delay = 0.01
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(delay)
        delay = min(delay * 2, 0.2)


class Sim:
    """A running apiserver.py subprocess and clients for it."""

    def __init__(self, *extra):
        self.dir = tempfile.mkdtemp(prefix="kube-sim-test-")
        self.stderr = open(os.path.join(self.dir, "stderr"), "w+b")
        # bufsize=0: select() must see every line, none may hide in a buffer
        self.proc = subprocess.Popen(
            [sys.executable, SERVER, "--port", "0", "--gen-certs", os.path.join(self.dir, "pki"),
             "--admin-port", "0", *extra],
            stdout=subprocess.PIPE, stderr=self.stderr, bufsize=0)
        lines = {}
        deadline = time.monotonic() + 30
        while len(lines) < 3:
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.stderr.seek(0)
                err = self.stderr.read().decode(errors="replace")
                self.stop()
                raise RuntimeError("apiserver.py did not start: " + err)
            ready, _, _ = select.select([self.proc.stdout], [], [], 0.5)
            if ready:
                key, _, value = self.proc.stdout.readline().decode().strip().partition(" ")
                lines[key] = value
        self.host, port = lines["LISTENING"].rsplit(":", 1)
        self.port = int(port)
        self.admin = "http://" + lines["ADMIN"]
        self.kubeconfig = lines["KUBECONFIG"]
        pki = os.path.join(self.dir, "pki")
        with open(os.path.join(pki, "token")) as f:
            self.token = f.read().strip()
        self.ctx = ssl.create_default_context(cafile=os.path.join(pki, "ca.crt"))
        self.cache = os.path.join(self.dir, "kubectl-cache")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.stderr.seek(0)
        err = self.stderr.read().decode(errors="replace")
        if "Traceback" in err:                      # a server bug: show it
            sys.stderr.write("apiserver.py stderr:\n" + err)
        self.proc.stdout.close()
        self.stderr.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    # -- API --

    def conn(self, timeout=IO_TIMEOUT):
        return http.client.HTTPSConnection(self.host, self.port, context=self.ctx,
                                           timeout=timeout)

    def request(self, method, path, body=None, token="default", ctype="application/json",
                headers=None):
        """Returns (status, headers, decoded JSON or text)."""
        hdrs = {"Accept": "application/json", "User-Agent": "sim-test"}
        if token == "default":
            token = self.token
        if token:
            hdrs["Authorization"] = f"Bearer {token}"
        data = None
        if body is not None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            hdrs["Content-Type"] = ctype
        hdrs.update(headers or {})
        c = self.conn()
        try:
            c.request(method, path, body=data, headers=hdrs)
            resp = c.getresponse()
            raw = resp.read()
            try:
                payload = json.loads(raw)
            except ValueError:
                payload = raw.decode()
            return resp.status, resp.headers, payload
        finally:
            c.close()

    def ok(self, method, path, body=None, ctype="application/json", expect=(200, 201)):
        status, _, payload = self.request(method, path, body, ctype=ctype)
        if status not in expect:
            raise AssertionError(f"{method} {path} -> {status}: {payload}")
        return payload

    def open_watch(self, path):
        """Start a watch; returns (connection, response) to read lines from."""
        c = self.conn()
        c.request("GET", path, headers={"Authorization": f"Bearer {self.token}",
                                        "Accept": "application/json"})
        resp = c.getresponse()
        return c, resp

    @staticmethod
    def next_event(resp):
        line = resp.readline()
        return json.loads(line) if line.strip() else None

    # -- admin --

    def admin_call(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else (b"" if method == "POST"
                                                                     else None)
        req = urllib.request.Request(self.admin + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=IO_TIMEOUT) as resp:
            return json.loads(resp.read())

    # -- kubectl --

    def kubectl(self, *args, stdin=None, check=True):
        env = dict(os.environ, KUBECONFIG=self.kubeconfig, HOME=self.dir)
        proc = subprocess.run([KUBECTL, "--cache-dir", self.cache, *args], input=stdin,
                              capture_output=True, text=True, env=env, timeout=60)
        if check and proc.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({proc.returncode}):\n"
                                 f"{proc.stdout}{proc.stderr}")
        return proc


SIM = None


def setUpModule():
    global SIM
    SIM = Sim("--bookmark-interval", "0.5")


def tearDownModule():
    if SIM:
        SIM.stop()


def cm(name, labels=None, data=None):
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "labels": labels or {}}, "data": data or {"k": "v"}}


def make_namespace(name):
    SIM.ok("POST", "/api/v1/namespaces",
           {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    return f"/api/v1/namespaces/{name}"


@unittest.skipIf(KUBECTL is None, "kubectl not installed")
class KubectlTest(unittest.TestCase):
    """The real kubectl against the server, end to end."""

    def test_crd_and_objects_lifecycle(self):
        k = SIM.kubectl
        out = k("apply", "-f", "-", stdin=CRD_YAML).stdout
        self.assertIn("customresourcedefinition.apiextensions.k8s.io/loadbalancers.doorman.dev "
                      "created", out)
        k("wait", "--for", "condition=established", "--timeout=10s",
          "crd/loadbalancers.doorman.dev")
        wait_until(lambda: SIM.request("GET", "/apis/doorman.dev/v1alpha1")[0] == 200,
                   what="doorman.dev/v1alpha1 served")

        out = k("apply", "-f", "-", stdin=LB_YAML.replace("{extra}", "").replace(
            "{target}", "8080")).stdout
        self.assertIn("loadbalancer.doorman.dev/shop created", out)
        self.assertIn("service/shop-svc created", out)

        lb = json.loads(k("get", "loadbalancer", "shop", "-o", "json").stdout)
        self.assertEqual(lb["metadata"]["generation"], 1)
        self.assertEqual(lb["spec"]["listeners"][0]["port"], 8080)
        svc = json.loads(k("get", "svc", "shop-svc", "-o", "json").stdout)
        self.assertEqual(svc["spec"]["ports"][0]["protocol"], "TCP")   # defaulted
        self.assertTrue(svc["spec"]["clusterIP"])

        table = k("get", "dlb").stdout                                 # shortName, Table
        self.assertRegex(table, r"NAME\s+PORTS\s+ACCEPTED\s+AGE")
        self.assertRegex(table, r"shop\s+8080\s+")
        table = k("get", "services").stdout
        self.assertRegex(table, r"NAME\s+TYPE\s+CLUSTER-IP\s+EXTERNAL-IP\s+PORT\(S\)\s+AGE")
        self.assertRegex(table, r"shop-svc\s+LoadBalancer\s+10\.96\.\d+\.\d+\s+<pending>\s+80:")
        self.assertRegex(k("get", "doorman").stdout, r"shop\s+8080\s+")          # category

        # apply a change: generation 1 -> 2 (CR), Service port merged by key
        changed = LB_YAML.replace("{extra}", "  - {name: tls, port: 8443, protocol: HTTPS}")
        out = k("apply", "-f", "-", stdin=changed.replace("{target}", "9090")).stdout
        self.assertIn("loadbalancer.doorman.dev/shop configured", out)
        lb = json.loads(k("get", "dlb", "shop", "-o", "json").stdout)
        self.assertEqual(lb["metadata"]["generation"], 2)
        self.assertEqual([x["port"] for x in lb["spec"]["listeners"]], [8080, 8443])
        svc = json.loads(k("get", "svc", "shop-svc", "-o", "json").stdout)
        self.assertEqual(svc["spec"]["ports"][0]["targetPort"], 9090)
        self.assertEqual(k("apply", "-f", "-", stdin=changed.replace("{target}", "9090"))
                         .stdout.count("unchanged"), 2)

        # status through the subresource: status changes, generation does not
        k("patch", "dlb", "shop", "--subresource=status", "--type=merge", "-p",
          '{"status":{"observedGeneration":2,"conditions":[{"type":"Accepted","status":"True"}]}}')
        lb = json.loads(k("get", "dlb", "shop", "-o", "json").stdout)
        self.assertEqual(lb["status"]["observedGeneration"], 2)
        self.assertEqual(lb["metadata"]["generation"], 2)
        # A [*] column shows the first match only, as the real API server's table converter.
        self.assertRegex(k("get", "dlb", "shop").stdout, r"shop\s+8080\s+True\s+")

        # a spec patch without --subresource cannot touch status
        k("patch", "dlb", "shop", "--type=merge", "-p", '{"status":{"observedGeneration":9}}')
        lb = json.loads(k("get", "dlb", "shop", "-o", "json").stdout)
        self.assertEqual(lb["status"]["observedGeneration"], 2)

        # schema: unknown fields refused by kubectl's default strict validation
        bad = k("apply", "-f", "-", check=False, stdin=LB_YAML.replace(
            "{extra}", "  bogus: 1").replace("{target}", "9090"))
        self.assertNotEqual(bad.returncode, 0)
        self.assertIn('unknown field "spec.bogus"', bad.stderr)

        # what kubectl sent: JSON merge patch for the CR, strategic merge for the Service
        reqs = SIM.admin_call("GET", "/requests")["requests"]
        ctypes = {(r["resource"], r["contentType"]) for r in reqs if r["verb"] == "patch"}
        self.assertIn(("loadbalancers", "application/merge-patch+json"), ctypes)
        self.assertIn(("services", "application/strategic-merge-patch+json"), ctypes)

        out = k("delete", "-f", "-", stdin=changed.replace("{target}", "9090")).stdout
        self.assertIn('loadbalancer.doorman.dev "shop" deleted', out)
        self.assertEqual(SIM.request("GET", "/apis/doorman.dev/v1alpha1/namespaces/default/"
                                            "loadbalancers/shop")[0], 404)
        k("delete", "crd", "loadbalancers.doorman.dev")
        self.assertEqual(SIM.request("GET", "/apis/doorman.dev/v1alpha1")[0], 404)

    def test_kubectl_create_get_watch_builtin(self):
        k = SIM.kubectl
        # typed "kubectl create" subcommands send protobuf bodies
        k("create", "namespace", "kubectl-ns")
        k("-n", "kubectl-ns", "create", "configmap", "c1", "--from-literal=a=b")
        pki = os.path.join(SIM.dir, "pki")
        k("-n", "kubectl-ns", "create", "secret", "tls", "shop-tls",
          "--cert", os.path.join(pki, "server.crt"), "--key", os.path.join(pki, "server.key"))
        secret = json.loads(k("-n", "kubectl-ns", "get", "secret", "shop-tls", "-o", "json").stdout)
        self.assertEqual(secret["type"], "kubernetes.io/tls")
        with open(os.path.join(pki, "server.crt"), "rb") as f:
            self.assertEqual(base64.b64decode(secret["data"]["tls.crt"]), f.read())
        k("-n", "kubectl-ns", "create", "ingress", "web", "--class=doorman",
          "--rule=shop.example.com/api*=api:8080,tls=shop-tls")
        ing = json.loads(k("-n", "kubectl-ns", "get", "ingress", "web", "-o", "json").stdout)
        self.assertEqual(ing["spec"]["rules"][0]["http"]["paths"][0]["pathType"], "Prefix")
        self.assertRegex(k("-n", "kubectl-ns", "get", "ingress").stdout,
                         r"web\s+doorman\s+shop.example.com\s+80, 443")
        k("-n", "kubectl-ns", "label", "configmap", "c1", "tier=gold")
        out = k("-n", "kubectl-ns", "get", "cm", "-l", "tier=gold", "-o", "name").stdout
        self.assertEqual(out.strip(), "configmap/c1")
        # kubectl get --watch: initial ADDED and a later change, ended by --request-timeout
        env = dict(os.environ, KUBECONFIG=SIM.kubeconfig, HOME=SIM.dir)
        watcher = subprocess.Popen([KUBECTL, "--cache-dir", SIM.cache, "-n", "kubectl-ns", "get",
                                    "cm", "-w", "-o", "name", "--request-timeout=20s"],
                                   stdout=subprocess.PIPE, bufsize=0, env=env)
        try:
            wait_until(lambda: any(r["verb"] == "watch" and r["namespace"] == "kubectl-ns"
                                   for r in SIM.admin_call("GET", "/requests")["requests"]),
                       what="kubectl watch started")
            k("-n", "kubectl-ns", "create", "configmap", "c2", "--from-literal=x=y")
            lines = []
            deadline = time.monotonic() + IO_TIMEOUT
            while len(lines) < 2 and time.monotonic() < deadline:
                ready, _, _ = select.select([watcher.stdout], [], [], 0.5)
                if ready:
                    lines.append(watcher.stdout.readline().decode().strip())
            self.assertEqual(lines, ["configmap/c1", "configmap/c2"])
        finally:
            watcher.kill()
            watcher.wait()
            watcher.stdout.close()
        k("delete", "namespace", "kubectl-ns")
        self.assertEqual(SIM.request("GET", "/api/v1/namespaces/kubectl-ns/configmaps/c1")[0],
                         404)


class HttpTest(unittest.TestCase):
    """Direct HTTPS requests: auth, concurrency, pagination, watch, faults."""

    def test_unauthorized(self):
        for token in (None, "wrong-token"):
            status, _, body = SIM.request("GET", "/api/v1/namespaces", token=token)
            self.assertEqual(status, 401)
            self.assertEqual((body["kind"], body["reason"], body["code"]),
                             ("Status", "Unauthorized", 401))
        self.assertEqual(SIM.request("GET", "/healthz", token=None)[0], 200)

    def test_create_conflicts_and_not_found(self):
        base = make_namespace("conflicts")
        created = SIM.ok("POST", f"{base}/configmaps", cm("a"))
        self.assertTrue(created["metadata"]["uid"])
        status, _, body = SIM.request("POST", f"{base}/configmaps", cm("a"))
        self.assertEqual((status, body["reason"]), (409, "AlreadyExists"))
        status, _, body = SIM.request("GET", f"{base}/configmaps/missing")
        self.assertEqual((status, body["reason"], body["details"]["name"]),
                         (404, "NotFound", "missing"))
        status, _, body = SIM.request("POST", "/api/v1/namespaces/nope/configmaps", cm("x"))
        self.assertEqual(status, 404)

        stale = dict(created)
        fresh = SIM.ok("PUT", f"{base}/configmaps/a", dict(created, data={"k": "2"}))
        self.assertGreater(int(fresh["metadata"]["resourceVersion"]),
                           int(created["metadata"]["resourceVersion"]))
        status, _, body = SIM.request("PUT", f"{base}/configmaps/a", dict(stale, data={"k": "3"}))
        self.assertEqual((status, body["reason"]), (409, "Conflict"))
        self.assertIn("the object has been modified", body["message"])
        unconditional = dict(created, data={"k": "4"})
        unconditional["metadata"] = {k: v for k, v in created["metadata"].items()
                                     if k != "resourceVersion"}
        self.assertEqual(SIM.ok("PUT", f"{base}/configmaps/a", unconditional)["data"]["k"], "4")
        # a no-op update keeps the resourceVersion
        cur = SIM.ok("GET", f"{base}/configmaps/a")
        again = SIM.ok("PUT", f"{base}/configmaps/a", cur)
        self.assertEqual(again["metadata"]["resourceVersion"], cur["metadata"]["resourceVersion"])
        SIM.ok("DELETE", f"{base}/configmaps/a")
        self.assertEqual(SIM.request("DELETE", f"{base}/configmaps/a")[0], 404)

    def test_lease_optimistic_concurrency(self):
        base = "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases"
        lease = SIM.ok("POST", base, {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                                      "metadata": {"name": "doorman-leader"},
                                      "spec": {"holderIdentity": "a",
                                               "leaseDurationSeconds": 15}})
        won = dict(lease, spec=dict(lease["spec"], holderIdentity="b"))
        lost = dict(lease, spec=dict(lease["spec"], holderIdentity="c"))
        self.assertEqual(SIM.request("PUT", f"{base}/doorman-leader", won)[0], 200)
        self.assertEqual(SIM.request("PUT", f"{base}/doorman-leader", lost)[0], 409)
        self.assertEqual(SIM.ok("GET", f"{base}/doorman-leader")["spec"]["holderIdentity"], "b")

    def test_list_pagination_and_expired_continue(self):
        base = make_namespace("paging")
        names = [f"cm-{i:02d}" for i in range(7)]
        for n in names:
            SIM.ok("POST", f"{base}/configmaps", cm(n))
        first = SIM.ok("GET", f"{base}/configmaps?limit=3")
        self.assertEqual([i["metadata"]["name"] for i in first["items"]], names[:3])
        self.assertEqual(first["metadata"]["remainingItemCount"], 4)
        SIM.ok("POST", f"{base}/configmaps", cm("cm-99"))     # after the snapshot
        seen, page = [], first
        while True:
            seen += [i["metadata"]["name"] for i in page["items"]]
            self.assertEqual(page["metadata"]["resourceVersion"],
                             first["metadata"]["resourceVersion"])
            token = page["metadata"].get("continue")
            if not token:
                break
            page = SIM.ok("GET", f"{base}/configmaps?limit=3&continue={token}")
        self.assertEqual(seen, names)                          # a consistent snapshot
        token = first["metadata"]["continue"]
        SIM.admin_call("POST", "/faults/compact")
        status, _, body = SIM.request("GET", f"{base}/configmaps?limit=3&continue={token}")
        self.assertEqual((status, body["reason"]), (410, "Expired"))

    def test_label_and_field_selectors(self):
        base = make_namespace("selectors")
        for name, labels in [("a", {"app": "web", "tier": "fe"}), ("b", {"app": "web"}),
                             ("c", {"app": "db", "tier": "be"}), ("d", {})]:
            SIM.ok("POST", f"{base}/configmaps", cm(name, labels))

        def names(query):
            return [i["metadata"]["name"] for i in SIM.ok("GET", f"{base}/configmaps?{query}")
                    ["items"]]
        q = urllib.parse.quote
        self.assertEqual(names("labelSelector=" + q("app=web")), ["a", "b"])
        self.assertEqual(names("labelSelector=" + q("app=web,tier!=fe")), ["b"])
        self.assertEqual(names("labelSelector=" + q("app in (db,web),tier")), ["a", "c"])
        self.assertEqual(names("labelSelector=" + q("!app")), ["d"])
        self.assertEqual(names("labelSelector=" + q("tier notin (fe)")), ["b", "c", "d"])
        self.assertEqual(names("fieldSelector=" + q("metadata.name=c")), ["c"])
        status, _, _ = SIM.request("GET", f"{base}/configmaps?labelSelector=" + q("a in b"))
        self.assertEqual(status, 400)
        everywhere = SIM.ok("GET", "/api/v1/configmaps?fieldSelector=" +
                            q("metadata.namespace=selectors"))
        self.assertEqual(len(everywhere["items"]), 4)

    def test_merge_json_and_strategic_patch(self):
        base = make_namespace("patching")
        SIM.ok("POST", f"{base}/configmaps", cm("p", {"a": "1"}, {"x": "1", "y": "2"}))
        out = SIM.ok("PATCH", f"{base}/configmaps/p", {"data": {"x": None, "z": "3"},
                                                        "metadata": {"labels": {"b": "2"}}},
                     ctype="application/merge-patch+json")
        self.assertEqual(out["data"], {"y": "2", "z": "3"})
        self.assertEqual(out["metadata"]["labels"], {"a": "1", "b": "2"})
        out = SIM.ok("PATCH", f"{base}/configmaps/p",
                     [{"op": "test", "path": "/data/y", "value": "2"},
                      {"op": "replace", "path": "/data/y", "value": "22"},
                      {"op": "add", "path": "/metadata/labels/c", "value": "3"},
                      {"op": "remove", "path": "/data/z"}],
                     ctype="application/json-patch+json")
        self.assertEqual(out["data"], {"y": "22"})
        self.assertEqual(out["metadata"]["labels"]["c"], "3")
        status, _, _ = SIM.request("PATCH", f"{base}/configmaps/p",
                                   [{"op": "test", "path": "/data/y", "value": "nope"}],
                                   ctype="application/json-patch+json")
        self.assertEqual(status, 422)

        svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
               "spec": {"ports": [{"name": "a", "port": 80}, {"name": "b", "port": 81}]}}
        SIM.ok("POST", f"{base}/services", svc)
        out = SIM.ok("PATCH", f"{base}/services/s",
                     {"spec": {"ports": [{"port": 81, "targetPort": 8081},
                                         {"port": 80, "$patch": "delete"},
                                         {"name": "c", "port": 82}]}},
                     ctype="application/strategic-merge-patch+json")
        self.assertEqual([(p["name"], p["port"], p["targetPort"]) for p in out["spec"]["ports"]],
                         [("b", 81, 8081), ("c", 82, 82)])

    def test_status_subresource_and_generation(self):
        make_namespace("status")
        ing = {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
               "metadata": {"name": "i"},
               "spec": {"defaultBackend": {"service": {"name": "s", "port": {"number": 80}}}},
               "status": {"loadBalancer": {"ingress": [{"ip": "1.2.3.4"}]}}}
        path = "/apis/networking.k8s.io/v1/namespaces/status/ingresses/i"
        created = SIM.ok("POST", "/apis/networking.k8s.io/v1/namespaces/status/ingresses", ing)
        self.assertEqual(created["status"], {"loadBalancer": {}})     # status reset on create
        self.assertEqual(created["metadata"]["generation"], 1)
        st = dict(created, status={"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}]}})
        out = SIM.ok("PUT", path + "/status", st)
        self.assertEqual(out["status"]["loadBalancer"]["ingress"][0]["ip"], "192.0.2.1")
        self.assertEqual(out["metadata"]["generation"], 1)
        out = SIM.ok("PUT", path, dict(out, status={}, metadata=dict(
            out["metadata"], labels={"x": "y"})))                         # metadata only
        self.assertEqual(out["status"]["loadBalancer"]["ingress"][0]["ip"], "192.0.2.1")
        self.assertEqual(out["metadata"]["generation"], 1)
        out = SIM.ok("PATCH", path, {"spec": {"ingressClassName": "doorman"}},
                     ctype="application/merge-patch+json")
        self.assertEqual(out["metadata"]["generation"], 2)
        out = SIM.ok("PATCH", path + "/status", {"spec": {"ingressClassName": "x"},
                                                 "status": {"loadBalancer": {"ingress": None}}},
                     ctype="application/merge-patch+json")
        self.assertEqual((out["spec"]["ingressClassName"], out["status"]),
                         ("doorman", {"loadBalancer": {}}))

    def test_events_share_storage_and_deletecollection(self):
        base = make_namespace("events")
        SIM.ok("POST", "/apis/events.k8s.io/v1/namespaces/events/events", {
            "apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "e1"},
            "regarding": {"kind": "Service", "name": "web", "namespace": "events"},
            "reason": "PortConflict", "note": "port 80 is taken", "type": "Warning",
            "action": "Sync", "reportingController": "doorman.dev/controller",
            "reportingInstance": "c-1", "eventTime": "2025-01-01T00:00:00.000000Z"})
        core = SIM.ok("GET", f"{base}/events?fieldSelector=involvedObject.name%3Dweb")
        self.assertEqual([(e["message"], e["involvedObject"]["kind"], e["reportingComponent"])
                          for e in core["items"]],
                         [("port 80 is taken", "Service", "doorman.dev/controller")])
        SIM.ok("POST", f"{base}/events", {"apiVersion": "v1", "kind": "Event",
                                          "metadata": {"name": "e2"}, "message": "hello",
                                          "involvedObject": {"kind": "Ingress", "name": "i", "namespace": "events"}})
        # legacyValidateEvent: an Event about a cluster-scoped object lives in "default" only.
        status, _, body = SIM.request("POST", f"{base}/events", {
            "apiVersion": "v1", "kind": "Event", "metadata": {"name": "e3"}, "message": "x",
            "involvedObject": {"kind": "IngressClass", "name": "doorman"}})
        self.assertEqual((status, body["reason"]), (422, "Invalid"), body)
        self.assertIn("does not match event.namespace", body["message"])
        new = SIM.ok("GET", "/apis/events.k8s.io/v1/namespaces/events/events/e2")
        self.assertEqual((new["apiVersion"], new["note"], new["regarding"]["kind"]),
                         ("events.k8s.io/v1", "hello", "Ingress"))
        SIM.ok("DELETE", f"{base}/events")
        self.assertEqual(SIM.ok("GET", f"{base}/events")["items"], [])

    def test_finalizers_delay_deletion(self):
        base = make_namespace("finalizers")
        SIM.ok("POST", f"{base}/configmaps", dict(cm("f"), metadata={
            "name": "f", "finalizers": ["doorman.dev/cleanup"]}))
        out = SIM.ok("DELETE", f"{base}/configmaps/f")
        self.assertTrue(out["metadata"]["deletionTimestamp"])
        self.assertEqual(SIM.request("GET", f"{base}/configmaps/f")[0], 200)
        SIM.ok("PATCH", f"{base}/configmaps/f", {"metadata": {"finalizers": None}},
               ctype="application/merge-patch+json")
        self.assertEqual(SIM.request("GET", f"{base}/configmaps/f")[0], 404)


class WatchTest(unittest.TestCase):
    """Watch streams: resume, bookmarks, 410, drops, timeouts."""

    def watch_events(self, path, count):
        c, resp = SIM.open_watch(path)
        try:
            self.assertEqual(resp.status, 200)
            self.assertEqual(resp.headers["Transfer-Encoding"], "chunked")
            return [SIM.next_event(resp) for _ in range(count)]
        finally:
            c.close()

    def test_watch_initial_and_resume(self):
        base = make_namespace("watch-resume")
        SIM.ok("POST", f"{base}/configmaps", cm("one"))
        listed = SIM.ok("GET", f"{base}/configmaps")
        rv = listed["metadata"]["resourceVersion"]
        SIM.ok("POST", f"{base}/configmaps", cm("two"))
        SIM.ok("PATCH", f"{base}/configmaps/one", {"data": {"k": "changed"}},
               ctype="application/merge-patch+json")
        SIM.ok("DELETE", f"{base}/configmaps/two")

        events = self.watch_events(f"{base}/configmaps?watch=1&resourceVersion={rv}", 3)
        self.assertEqual([(e["type"], e["object"]["metadata"]["name"]) for e in events],
                         [("ADDED", "two"), ("MODIFIED", "one"), ("DELETED", "two")])
        rvs = [int(e["object"]["metadata"]["resourceVersion"]) for e in events]
        self.assertEqual(rvs, sorted(rvs))
        self.assertEqual(events[0]["object"]["kind"], "ConfigMap")

        events = self.watch_events(f"{base}/configmaps?watch=true&resourceVersion=0", 1)
        self.assertEqual((events[0]["type"], events[0]["object"]["metadata"]["name"]),
                         ("ADDED", "one"))
        # legacy /watch/ path and live delivery
        rv = SIM.ok("GET", f"{base}/configmaps")["metadata"]["resourceVersion"]
        c, resp = SIM.open_watch(f"/api/v1/watch/namespaces/watch-resume/configmaps?"
                                 f"resourceVersion={rv}")
        try:
            SIM.ok("POST", f"{base}/configmaps", cm("three"))
            ev = SIM.next_event(resp)
            self.assertEqual((ev["type"], ev["object"]["metadata"]["name"]), ("ADDED", "three"))
        finally:
            c.close()

    def test_label_selector_transitions(self):
        base = make_namespace("watch-sel")
        SIM.ok("POST", f"{base}/configmaps", cm("x", {"sel": "no"}))
        rv = SIM.ok("GET", f"{base}/configmaps")["metadata"]["resourceVersion"]
        SIM.ok("PATCH", f"{base}/configmaps/x", {"metadata": {"labels": {"sel": "yes"}}},
               ctype="application/merge-patch+json")
        SIM.ok("PATCH", f"{base}/configmaps/x", {"metadata": {"labels": {"sel": "no"}}},
               ctype="application/merge-patch+json")
        events = self.watch_events(f"{base}/configmaps?watch=1&labelSelector=sel%3Dyes&"
                                   f"resourceVersion={rv}", 2)
        self.assertEqual([e["type"] for e in events], ["ADDED", "DELETED"])

    def test_bookmarks(self):
        base = make_namespace("watch-bm")
        rv = SIM.ok("GET", f"{base}/configmaps")["metadata"]["resourceVersion"]
        c, resp = SIM.open_watch(f"{base}/configmaps?watch=1&allowWatchBookmarks=true&"
                                 f"resourceVersion={rv}")
        try:
            ev = SIM.next_event(resp)          # interval is 0.5 s in this module's server
            self.assertEqual(ev["type"], "BOOKMARK")
            self.assertEqual(ev["object"]["kind"], "ConfigMap")
            self.assertEqual(set(ev["object"]), {"kind", "apiVersion", "metadata"})
            self.assertEqual(set(ev["object"]["metadata"]) - {"creationTimestamp"},
                             {"resourceVersion"})
            self.assertGreaterEqual(int(ev["object"]["metadata"]["resourceVersion"]), int(rv))
        finally:
            c.close()
        # watch-list: initial events, then a bookmark marking their end
        SIM.ok("POST", f"{base}/configmaps", cm("init"))
        c, resp = SIM.open_watch(f"{base}/configmaps?watch=1&sendInitialEvents=true&"
                                 f"allowWatchBookmarks=true&resourceVersionMatch=NotOlderThan")
        try:
            self.assertEqual(SIM.next_event(resp)["type"], "ADDED")
            ev = SIM.next_event(resp)
            self.assertEqual(ev["type"], "BOOKMARK")
            self.assertEqual(ev["object"]["metadata"]["annotations"],
                             {"k8s.io/initial-events-end": "true"})
        finally:
            c.close()

    def test_gone_after_compaction(self):
        base = make_namespace("watch-410")
        rv = SIM.ok("GET", f"{base}/configmaps")["metadata"]["resourceVersion"]
        SIM.ok("POST", f"{base}/configmaps", cm("after"))
        SIM.admin_call("POST", "/faults/compact")
        c, resp = SIM.open_watch(f"{base}/configmaps?watch=1&resourceVersion={rv}")
        try:
            self.assertEqual(resp.status, 200)
            ev = SIM.next_event(resp)
            self.assertEqual(ev["type"], "ERROR")
            self.assertEqual((ev["object"]["code"], ev["object"]["reason"]), (410, "Expired"))
            self.assertIn("too old resource version", ev["object"]["message"])
            self.assertIsNone(SIM.next_event(resp))                   # stream closed
        finally:
            c.close()
        # a fresh list+watch works again
        rv = SIM.ok("GET", f"{base}/configmaps")["metadata"]["resourceVersion"]
        c, resp = SIM.open_watch(f"{base}/configmaps?watch=1&resourceVersion={rv}")
        try:
            SIM.ok("DELETE", f"{base}/configmaps/after")
            self.assertEqual(SIM.next_event(resp)["type"], "DELETED")
        finally:
            c.close()

    def test_window_overflow_gives_gone(self):
        small = Sim("--compaction-window", "3")
        try:
            small.ok("POST", "/api/v1/namespaces/default/configmaps", cm("w0"))
            rv = small.ok("GET", "/api/v1/namespaces/default/configmaps")["metadata"][
                "resourceVersion"]
            for i in range(1, 5):
                small.ok("POST", "/api/v1/namespaces/default/configmaps", cm(f"w{i}"))
            c, resp = small.open_watch(f"/api/v1/namespaces/default/configmaps?watch=1&"
                                       f"resourceVersion={rv}")
            try:
                self.assertEqual(small.next_event(resp)["object"]["code"], 410)
            finally:
                c.close()
        finally:
            small.stop()

    def test_drop_watches_and_timeout(self):
        base = make_namespace("watch-drop")
        c, resp = SIM.open_watch(f"{base}/configmaps?watch=1")
        try:
            wait_until(lambda: SIM.admin_call("GET", "/stats")["openWatches"] >= 1,
                       what="watch registered")
            self.assertGreaterEqual(SIM.admin_call("POST", "/faults/drop-watches")["dropped"], 1)
            started = time.monotonic()
            self.assertEqual(resp.read(1), b"")                       # clean end of stream
            self.assertLess(time.monotonic() - started, 3)
        finally:
            c.close()
        c, resp = SIM.open_watch(f"{base}/configmaps?watch=1")
        try:
            wait_until(lambda: SIM.admin_call("GET", "/stats")["openWatches"] >= 1,
                       what="watch registered")
            SIM.admin_call("POST", "/faults/drop-watches", {"abrupt": True})
            with self.assertRaises((http.client.IncompleteRead, ConnectionError)):
                resp.read(1)                                          # no final chunk
        finally:
            c.close()
        c, resp = SIM.open_watch(f"{base}/configmaps?watch=1&timeoutSeconds=1")
        try:
            started = time.monotonic()
            self.assertIsNone(SIM.next_event(resp))
            self.assertLess(time.monotonic() - started, 4)
        finally:
            c.close()


class AdminTest(unittest.TestCase):
    """Fault injection and the request log."""

    def tearDown(self):
        SIM.admin_call("POST", "/faults/clear")

    def test_fail_next_requests(self):
        base = make_namespace("faults")
        SIM.admin_call("POST", "/faults/fail", {"count": 2, "code": 500,
                                                "match": "/namespaces/faults/configmaps"})
        for _ in range(2):
            status, _, body = SIM.request("GET", f"{base}/configmaps")
            self.assertEqual((status, body["kind"], body["reason"]),
                             (500, "Status", "InternalError"))
        self.assertEqual(SIM.request("GET", f"{base}/configmaps")[0], 200)
        SIM.admin_call("POST", "/faults/fail", {"count": 1, "code": 429, "retryAfter": 1,
                                                "match": "/namespaces/faults/"})
        status, headers, body = SIM.request("GET", f"{base}/configmaps")
        self.assertEqual((status, headers["Retry-After"], body["reason"]),
                         (429, "1", "TooManyRequests"))
        self.assertEqual(SIM.request("GET", f"{base}/configmaps")[0], 200)

    def test_remove_drops_only_the_rules_with_that_match(self):
        base = make_namespace("faults-remove")
        SIM.admin_call("POST", "/faults/fail", {"count": 5, "code": 500, "match": "/configmaps"})
        SIM.admin_call("POST", "/faults/fail", {"count": 5, "code": 503, "match": "/secrets"})
        self.assertEqual(SIM.admin_call("POST", "/faults/remove", {"match": "/configmaps"}), {"removed": 1})
        self.assertEqual(SIM.request("GET", f"{base}/configmaps")[0], 200)
        self.assertEqual(SIM.request("GET", f"{base}/secrets")[0], 503)
        self.assertEqual([r["match"] for r in SIM.admin_call("GET", "/faults")["fail"]], ["/secrets"])

    def test_latency(self):
        SIM.admin_call("POST", "/faults/latency", {"ms": 300})
        started = time.monotonic()
        SIM.ok("GET", "/api/v1/namespaces/default")
        self.assertGreaterEqual(time.monotonic() - started, 0.3)
        SIM.admin_call("POST", "/faults/latency", {"ms": 0})

    def test_latency_for_one_user_agent(self):
        # Only the named client is slowed; a 30 s delay would outlast the test's timeouts.
        def timed_get(ms, user_agent):
            SIM.admin_call("POST", "/faults/latency", {"ms": ms, "userAgent": user_agent})
            try:
                started = time.monotonic()
                SIM.ok("GET", "/api/v1/namespaces/default")
                return time.monotonic() - started
            finally:
                SIM.admin_call("POST", "/faults/latency", {"ms": 0})
        self.assertLess(timed_get(30000, "someone-else"), 5)
        self.assertGreaterEqual(timed_get(300, "sim-test"), 0.3)

    def test_request_log(self):
        SIM.admin_call("POST", "/reset-requests")
        SIM.ok("GET", "/api/v1/namespaces/default/configmaps?limit=1")
        SIM.request("DELETE", "/apis/coordination.k8s.io/v1/namespaces/default/leases/none")
        SIM.request("GET", "/version")
        reqs = SIM.admin_call("GET", "/requests?userAgent=sim-test")["requests"]
        self.assertEqual([(r["verb"], r["apiGroup"], r["resource"], r["namespace"], r["status"])
                          for r in reqs[:2]],
                         [("list", "", "configmaps", "default", 200),
                          ("delete", "coordination.k8s.io", "leases", "default", 404)])
        self.assertEqual((reqs[2]["verb"], reqs[2]["nonResourceURL"]), ("get", "/version"))
        self.assertEqual(reqs[0]["query"], "limit=1")
        self.assertEqual(SIM.admin_call("GET", "/healthz"), {"ok": True})
        self.assertEqual([r["body"] for r in reqs], [None, None, None])

    def test_request_log_keeps_status_write_bodies_only(self):
        make_namespace("logbody")
        base = "/api/v1/namespaces/logbody/configmaps"
        SIM.ok("POST", base, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"},
                              "data": {"secret": "s3cr3t"}})
        SIM.admin_call("POST", "/reset-requests")
        ing = {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "i"},
               "spec": {"defaultBackend": {"service": {"name": "s", "port": {"number": 80}}}}}
        path = "/apis/networking.k8s.io/v1/namespaces/logbody/ingresses"
        SIM.ok("POST", path, ing)
        patch = {"status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.9"}]}}}
        SIM.ok("PATCH", path + "/i/status", patch, ctype="application/merge-patch+json")
        SIM.ok("PATCH", base + "/c", {"data": {"secret": "other"}}, ctype="application/merge-patch+json")
        reqs = SIM.admin_call("GET", "/requests?userAgent=sim-test")["requests"]
        self.assertEqual([(r["method"], r["subresource"]) for r in reqs],
                         [("POST", None), ("PATCH", "status"), ("PATCH", None)])
        self.assertEqual(json.loads(reqs[1]["body"]), patch)
        self.assertEqual((reqs[0]["body"], reqs[2]["body"]), (None, None))


class CrdSchemaTest(unittest.TestCase):
    """CRD registration, defaulting and validation over HTTP."""

    def test_cluster_scoped_crd_schema(self):
        crd = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
               "metadata": {"name": "widgets.example.dev"},
               "spec": {"group": "example.dev", "scope": "Cluster",
                        "names": {"kind": "Widget", "plural": "widgets"},
                        "versions": [{"name": "v1", "served": True, "storage": True,
                                      "schema": {"openAPIV3Schema": {
                                          "type": "object", "properties": {"spec": {
                                              "type": "object", "required": ["size"],
                                              "properties": {
                                                  "size": {"type": "integer", "maximum": 10},
                                                  "mode": {"type": "string",
                                                           "default": "fast"}}}}}}}]}}
        SIM.ok("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd)
        base = "/apis/example.dev/v1/widgets"
        w = SIM.ok("POST", base, {"apiVersion": "example.dev/v1", "kind": "Widget",
                                  "metadata": {"name": "w"}, "spec": {"size": 3, "junk": 1}})
        self.assertEqual(w["spec"], {"size": 3, "mode": "fast"})      # pruned + defaulted
        status, headers, body = SIM.request("POST", base + "?fieldValidation=Strict", {
            "apiVersion": "example.dev/v1", "kind": "Widget", "metadata": {"name": "v"},
            "spec": {"size": 3, "junk": 1}})
        self.assertEqual(status, 400)
        status, _, body = SIM.request("POST", base, {
            "apiVersion": "example.dev/v1", "kind": "Widget", "metadata": {"name": "u"},
            "spec": {"size": 11}})
        self.assertEqual((status, body["reason"]), (422, "Invalid"))
        self.assertEqual(body["details"]["causes"][0]["field"], "spec.size")
        resources = SIM.ok("GET", "/apis/example.dev/v1")["resources"]
        self.assertEqual([(r["name"], r["namespaced"]) for r in resources], [("widgets", False)])
        SIM.ok("DELETE", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/"
                         "widgets.example.dev")
        self.assertEqual(SIM.request("GET", base)[0], 404)


if __name__ == "__main__":
    unittest.main()
