"""A real Prometheus (Debian package `prometheus`, temp config and storage, 127.0.0.1) scrapes a
running controller (--manifests) and dataplane; PromQL through its HTTP API must return the
expected series. Also: docs/metrics.md lists exactly the metric names the C++ sources register,
and every Grafana dashboard / alert expression parses in Prometheus and uses known metrics.
"""
import http.server
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import deploycheck as dc  # noqa: E402
from simkube import BUILD_DIR, ROOT  # noqa: E402

CONTROLLER = os.path.join(BUILD_DIR, "controller", "doorman-controller")
DATAPLANE = os.path.join(BUILD_DIR, "dataplane", "doorman-dataplane")
SOURCES = ["controller/metrics/metrics.cc", "controller/main.cc", "dataplane/admin/metrics.cc"]
DASHBOARD = os.path.join(ROOT, "dashboards", "doorman.json")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(pred, timeout=30, what="condition"):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            v = pred()
            if v:
                return v
        except Exception as e:  # noqa: BLE001
            last = e
        time.sleep(0.1)
    raise AssertionError("timed out waiting for %s (%r)" % (what, last))


def registered_metrics():
    names = set()
    for s in SOURCES:
        with open(os.path.join(ROOT, s)) as f:
            text = f.read()
            # .Name("doorman_...") calls, and {"doorman_...", "help"} tables fed to .Name(...).
            names |= set(re.findall(r'\.Name\("(doorman_[a-z0-9_]+)"\)', text))
            names |= set(re.findall(r'\{\s*"(doorman_[a-z0-9_]+)",\s*"', text))
    return names


def dashboard_exprs():
    with open(DASHBOARD) as f:
        dash = json.load(f)
    return [t["expr"] for p in dash["panels"] for t in p["targets"]], dash


class StaticChecks(unittest.TestCase):
    def test_metrics_doc_matches_sources(self):
        names = registered_metrics()
        self.assertGreaterEqual(len(names), 15)
        with open(os.path.join(ROOT, "docs", "metrics.md")) as f:
            documented = set(re.findall(r"^\| `(doorman_[a-z0-9_]+)` \|", f.read(), re.M))
        self.assertEqual(documented, names)
        # The names API.md §3 requires (the design contract).
        required = {"doorman_l4_connections_active", "doorman_l4_connections_total", "doorman_l4_bytes_total",
                    "doorman_l7_requests_total", "doorman_l7_request_duration_seconds", "doorman_backend_up",
                    "doorman_config_version", "doorman_config_updates_total",
                    "doorman_controller_watch_events_total", "doorman_controller_snapshot_version",
                    "doorman_controller_dataplanes_connected", "doorman_controller_push_seconds"}
        self.assertEqual(required - names, set(), "API.md names not registered")

    def test_dashboard_uses_known_metrics(self):
        exprs, dash = dashboard_exprs()
        names = registered_metrics()
        used = set()
        for e in exprs:
            for m in re.findall(r"\b(doorman_[a-z0-9_]+)", e):
                base = re.sub(r"_(bucket|sum|count)$", "", m)
                self.assertIn(base, names, e)
                used.add(base)
        titles = " ".join(p["title"] for p in dash["panels"]).lower()
        for word in ("requests", "errors", "latency", "connections", "backends up", "config version", "push latency"):
            self.assertIn(word, titles)
        self.assertTrue({"doorman_config_version", "doorman_controller_push_seconds", "doorman_backend_up",
                         "doorman_l7_requests_total", "doorman_l4_connections_active"} <= used)


class AlertRules(unittest.TestCase):
    """deploy/monitoring/prometheusrule.yaml's rules under `promtool test rules`, with version
    values as the binaries export them: content hashes, where an older state may be the larger
    number (a subtraction would miss it)."""

    def test_not_programmed_fires_on_any_difference(self):
        self.assertTrue(shutil.which("promtool"), "promtool missing: scripts/deps.sh test installs prometheus")
        import yaml
        with open(os.path.join(ROOT, "deploy", "monitoring", "prometheusrule.yaml")) as f:
            rule = yaml.safe_load(f)
        with tempfile.TemporaryDirectory(prefix="doorman-rules-") as tmp:
            with open(os.path.join(tmp, "rules.yaml"), "w") as f:
                yaml.safe_dump({"groups": rule["spec"]["groups"]}, f)
            alert = {"alertname": "DoormanDataplaneNotProgrammed", "severity": "warning", "instance": "dp-old:9101",
                     "namespace": "doorman-system"}
            tests = {"rule_files": ["rules.yaml"], "evaluation_interval": "1m", "tests": [{
                "interval": "1m",
                "input_series": [
                    {"series": 'doorman_controller_snapshot_version{instance="ctl:9100",namespace="doorman-system"}',
                     "values": "1475433047606925x10"},
                    {"series": 'doorman_config_version{instance="dp-new:9101",namespace="doorman-system"}',
                     "values": "1475433047606925x10"},
                    {"series": 'doorman_config_version{instance="dp-old:9101",namespace="doorman-system"}',
                     "values": "2274740465450615x10"},
                    {"series": 'doorman_config_version{instance="dp-lower:9101",namespace="doorman-system"}',
                     "values": "_x5 1000x5"},
                    # A second install seen by the same Prometheus, programmed with a smaller hash:
                    # compared with its own controller, it never fires.
                    {"series": 'doorman_controller_snapshot_version{instance="ctl:9100",namespace="edge"}',
                     "values": "42x10"},
                    {"series": 'doorman_config_version{instance="dp-edge:9101",namespace="edge"}', "values": "42x10"},
                ],
                "alert_rule_test": [
                    {"eval_time": "4m", "alertname": "DoormanDataplaneNotProgrammed", "exp_alerts": []},
                    {"eval_time": "6m", "alertname": "DoormanDataplaneNotProgrammed", "exp_alerts": [{
                        "exp_labels": alert,
                        "exp_annotations": {
                            "summary": "Dataplane dp-old:9101 runs an old routing state",
                            "description": "doorman_config_version on dp-old:9101 has differed from the controller's "
                                           "snapshot version for 5 minutes."}}]},
                    {"eval_time": "10m", "alertname": "DoormanDataplaneNotProgrammed", "exp_alerts": [
                        {"exp_labels": alert, "exp_annotations": {
                            "summary": "Dataplane dp-old:9101 runs an old routing state",
                            "description": "doorman_config_version on dp-old:9101 has differed from the controller's "
                                           "snapshot version for 5 minutes."}},
                        {"exp_labels": dict(alert, instance="dp-lower:9101"), "exp_annotations": {
                            "summary": "Dataplane dp-lower:9101 runs an old routing state",
                            "description": "doorman_config_version on dp-lower:9101 has differed from the controller's "
                                           "snapshot version for 5 minutes."}}]},
                ]}]}
            with open(os.path.join(tmp, "tests.yaml"), "w") as f:
                yaml.safe_dump(tests, f)
            p = subprocess.run(["promtool", "test", "rules", "tests.yaml"], cwd=tmp, capture_output=True, text=True,
                               timeout=60)
            self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
            # No controller series at all: nothing fires (no NaN comparison).
            tests["tests"][0]["input_series"] = tests["tests"][0]["input_series"][1:]
            tests["tests"][0]["alert_rule_test"] = [
                {"eval_time": "10m", "alertname": "DoormanDataplaneNotProgrammed", "exp_alerts": []}]
            with open(os.path.join(tmp, "tests.yaml"), "w") as f:
                yaml.safe_dump(tests, f)
            p = subprocess.run(["promtool", "test", "rules", "tests.yaml"], cwd=tmp, capture_output=True, text=True,
                               timeout=60)
            self.assertEqual(p.returncode, 0, p.stdout + p.stderr)

    def test_install_alerts_fire_per_namespace(self):
        """Two installs seen by one Prometheus: an install with no leader, no controller up or a
        backend down fires on its own, with its namespace, while the other is healthy."""
        self.assertTrue(shutil.which("promtool"), "promtool missing: scripts/deps.sh test installs prometheus")
        import yaml
        with open(os.path.join(ROOT, "deploy", "monitoring", "prometheusrule.yaml")) as f:
            rule = yaml.safe_load(f)
        series = [
            {"series": 'doorman_controller_leader{instance="ctl-a:9100",namespace="doorman-system"}', "values": "0x10"},
            {"series": 'doorman_controller_leader{instance="ctl-b:9100",namespace="doorman-system"}', "values": "0x10"},
            {"series": 'doorman_controller_leader{instance="ctl:9100",namespace="edge"}', "values": "1x10"},
            {"series": 'up{job="doorman-controller",instance="ctl-a:9100",namespace="doorman-system"}', "values": "1x10"},
            {"series": 'up{job="doorman-controller",instance="ctl:9100",namespace="edge"}', "values": "0x10"},
            {"series": 'doorman_backend_up{instance="dp:9101",backend="10.0.0.1:80",namespace="doorman-system"}',
             "values": "1x10"},
            {"series": 'doorman_backend_up{instance="dp-edge:9101",backend="10.0.0.1:80",namespace="edge"}',
             "values": "0x10"},
        ]

        declared = {r["alert"]: r for g in rule["spec"]["groups"] for r in g["rules"]}

        def fired(name, labels):
            annotations = {k: re.sub(r"\{\{ \$labels\.(\w+) \}\}", lambda m: labels.get(m.group(1), ""), v)
                           for k, v in declared[name].get("annotations", {}).items()}
            return {"eval_time": "6m", "alertname": name,
                    "exp_alerts": [{"exp_labels": dict(labels, severity="critical"), "exp_annotations": annotations}]}
        checks = [fired("DoormanControllerNoLeader", {"namespace": "doorman-system"}),
                  fired("DoormanControllerDown", {"namespace": "edge"}),
                  fired("DoormanBackendsDown", {"namespace": "edge", "backend": "10.0.0.1:80"})]
        with tempfile.TemporaryDirectory(prefix="doorman-rules-") as tmp:
            with open(os.path.join(tmp, "rules.yaml"), "w") as f:
                yaml.safe_dump({"groups": rule["spec"]["groups"]}, f)
            for c in checks:
                with self.subTest(alert=c["alertname"]):
                    tests = {"rule_files": ["rules.yaml"], "evaluation_interval": "1m", "tests": [
                        {"interval": "1m", "input_series": series, "alert_rule_test": [c]}]}
                    with open(os.path.join(tmp, "tests.yaml"), "w") as f:
                        yaml.safe_dump(tests, f)
                    p = subprocess.run(["promtool", "test", "rules", "tests.yaml"], cwd=tmp, capture_output=True,
                                       text=True, timeout=60)
                    self.assertEqual(p.returncode, 0, p.stdout + p.stderr)


    def test_certificate_expiring_soon(self):
        """Fires per certificate whose notAfter is less than 14 days away, for 10 minutes; not for one
        30 days away. promtool's clock starts at 0, so notAfter values are seconds from there."""
        self.assertTrue(shutil.which("promtool"), "promtool missing: scripts/deps.sh test installs prometheus")
        import yaml
        with open(os.path.join(ROOT, "deploy", "monitoring", "prometheusrule.yaml")) as f:
            rule = yaml.safe_load(f)
        name = "doorman_tls_certificate_expiry_timestamp_seconds"
        soon, later = 10 * 86400, 30 * 86400
        series = [{"series": '%s{instance="dp-%d:9101",listener="https-443",certificate="shop/%s",namespace="edge"}'
                             % (name, i, cert), "values": "%dx20" % at}
                  for i in (1, 2) for cert, at in (("soon", soon), ("later", later))]
        labels = {"namespace": "edge", "listener": "https-443", "certificate": "shop/soon", "severity": "warning"}
        annotations = {"summary": "Certificate shop/soon on listener https-443 expires within 14 days",
                       "description": "Renew the Secret shop/soon: the dataplanes serve the new certificate to new "
                                      "handshakes as soon as it changes."}
        tests = {"rule_files": ["rules.yaml"], "evaluation_interval": "1m", "tests": [{
            "interval": "1m", "input_series": series, "alert_rule_test": [
                {"eval_time": "5m", "alertname": "DoormanCertificateExpiringSoon", "exp_alerts": []},
                {"eval_time": "15m", "alertname": "DoormanCertificateExpiringSoon",
                 "exp_alerts": [{"exp_labels": labels, "exp_annotations": annotations}]}]}]}
        with tempfile.TemporaryDirectory(prefix="doorman-rules-") as tmp:
            with open(os.path.join(tmp, "rules.yaml"), "w") as f:
                yaml.safe_dump({"groups": rule["spec"]["groups"]}, f)
            with open(os.path.join(tmp, "tests.yaml"), "w") as f:
                yaml.safe_dump(tests, f)
            p = subprocess.run(["promtool", "test", "rules", "tests.yaml"], cwd=tmp, capture_output=True, text=True,
                               timeout=60)
            self.assertEqual(p.returncode, 0, p.stdout + p.stderr)

class Backend(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"hello from backend\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class PrometheusScrapeTest(unittest.TestCase):
    def setUp(self):
        self.assertTrue(shutil.which("prometheus"), "prometheus missing: scripts/deps.sh test installs it")
        self.assertTrue(os.access(CONTROLLER, os.X_OK) and os.access(DATAPLANE, os.X_OK), "binaries not built")
        self.tmp = tempfile.mkdtemp(prefix="doorman-prom-")
        self.procs = []
        self.backends = [http.server.ThreadingHTTPServer(("127.0.0.1", 0), Backend) for _ in range(2)]
        for b in self.backends:
            threading.Thread(target=b.serve_forever, daemon=True).start()

    def tearDown(self):
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(5)
        for b in self.backends:
            b.shutdown()
            b.server_close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def spawn(self, name, argv):
        log = open(os.path.join(self.tmp, name + ".log"), "w")
        p = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        self.procs.append(p)
        return p

    def logs(self):
        out = ""
        for n in ("controller", "dataplane", "prometheus"):
            path = os.path.join(self.tmp, n + ".log")
            if os.path.exists(path):
                with open(path) as f:
                    out += "\n--- %s ---\n%s" % (n, f.read()[-3000:])
        return out

    def query(self, expr):
        url = "http://127.0.0.1:%d/api/v1/query?%s" % (self.prom_port, urllib.parse.urlencode({"query": expr}))
        with urllib.request.urlopen(url, timeout=5) as r:
            data = json.loads(r.read())
        assert data["status"] == "success", data
        return data["data"]["result"]

    def test_scrape_and_query(self):
        http_port, tcp_port, grpc, cm, dm = (free_port() for _ in range(5))
        self.prom_port = free_port()
        be1, be2 = (b.server_address[1] for b in self.backends)
        manifest = os.path.join(self.tmp, "lb.yaml")
        with open(os.path.join(ROOT, "examples", "quickstart.yaml")) as f:
            text = f.read()
        text = text.replace("port: 8080", "port: %d" % http_port).replace("port: 8081", "port: %d" % tcp_port)
        text = text.replace("port: 9001", "port: %d" % be1).replace("port: 9002", "port: %d" % be2)
        with open(manifest, "w") as f:
            f.write(text)
        self.spawn("controller", [CONTROLLER, "--manifests", manifest, "--grpc-listen", "127.0.0.1:%d" % grpc,
                                  "--metrics-listen", "127.0.0.1:%d" % cm])
        self.spawn("dataplane", [DATAPLANE, "--controller", "127.0.0.1:%d" % grpc, "--node-name", "node-a",
                                 "--bind-address", "127.0.0.1", "--metrics-listen", "127.0.0.1:%d" % dm,
                                 "--state-dir", os.path.join(self.tmp, "state")])
        cfg = os.path.join(self.tmp, "prometheus.yml")
        with open(cfg, "w") as f:
            f.write("global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
                    "rule_files: [%s]\n"
                    "scrape_configs:\n"
                    "  - job_name: doorman-controller\n    static_configs: [{targets: ['127.0.0.1:%d']}]\n"
                    "  - job_name: doorman-dataplane\n    static_configs: [{targets: ['127.0.0.1:%d']}]\n"
                    % (os.path.join(self.tmp, "rules.yml"), cm, dm))
        rule = dc.one(dc.deploy_docs(), "PrometheusRule")
        with open(os.path.join(self.tmp, "rules.yml"), "w") as f:
            json.dump({"groups": rule["spec"]["groups"]}, f)  # JSON is YAML
        self.spawn("prometheus", ["prometheus", "--config.file", cfg, "--storage.tsdb.path", os.path.join(self.tmp, "tsdb"),
                                  "--web.listen-address", "127.0.0.1:%d" % self.prom_port, "--log.level", "warn"])
        try:
            wait_until(lambda: urllib.request.urlopen("http://127.0.0.1:%d/-/ready" % self.prom_port, timeout=2).status == 200,
                       timeout=60, what="prometheus ready")
            # Traffic through the L7 listener so the request series exist.
            wait_until(lambda: urllib.request.urlopen(urllib.request.Request(
                "http://127.0.0.1:%d/" % http_port, headers={"Host": "app.local"}), timeout=2).status == 200,
                timeout=30, what="request through the dataplane")
            for _ in range(3):
                urllib.request.urlopen(urllib.request.Request("http://127.0.0.1:%d/api/x" % http_port,
                                                              headers={"Host": "app.local"}), timeout=2).read()

            def programmed():
                r = self.query("doorman_config_version == scalar(doorman_controller_snapshot_version) "
                               "and doorman_config_version > 0")
                return r if len(r) == 1 else None
            r = wait_until(programmed, timeout=60, what="config_version == snapshot_version in Prometheus")
            self.assertEqual(r[0]["metric"]["job"], "doorman-dataplane")
            up = wait_until(lambda: self.query("up == 1") if len(self.query("up == 1")) == 2 else None,
                            what="both targets up")
            self.assertEqual({x["metric"]["job"] for x in up}, {"doorman-controller", "doorman-dataplane"})
            # route label = namespace/object/route
            want = {"default/quickstart/api", "default/quickstart/app"}
            wait_until(lambda: want <= {x["metric"]["route"] for x in self.query(
                'sum by (route) (doorman_l7_requests_total{code="200"})')}, what="doorman_l7_requests_total scraped")
            wait_until(lambda: self.query("doorman_controller_dataplanes_connected == 1"), what="dataplanes_connected")
            wait_until(lambda: self.query("doorman_backend_up == 1"), what="backend_up")
            wait_until(lambda: self.query("doorman_controller_push_seconds_count > 0"), what="push_seconds")
            # Every dashboard expression parses and evaluates in this Prometheus.
            exprs, _ = dashboard_exprs()
            for e in exprs:
                self.query(e.replace("$__rate_interval", "1m").replace("$instance", ".*").replace("$namespace", ".*"))
            # The alert rules loaded; the not-programmed alert is not firing.
            with urllib.request.urlopen("http://127.0.0.1:%d/api/v1/rules" % self.prom_port, timeout=5) as resp:
                groups = json.loads(resp.read())["data"]["groups"]
            names = {r["name"] for g in groups for r in g["rules"]}
            self.assertIn("DoormanDataplaneNotProgrammed", names)
            self.assertEqual(self.query(
                "doorman_config_version != on(namespace) group_left() max by (namespace) (doorman_controller_snapshot_version)"), [])
        except AssertionError as e:
            raise AssertionError(str(e) + self.logs())


if __name__ == "__main__":
    unittest.main(verbosity=2)
