#!/usr/bin/env python3
"""Both binaries: --help and --version exit 0; bad flags exit non-zero with one clear line."""
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (CONTROLLER, DATAPLANE, DoormanTestCase, Pki, free_port, http_get, port_open, tls_flags,  # noqa: E402
                     metric_value, wait_until)


def run(argv):
    return subprocess.run(argv, capture_output=True, text=True, timeout=10)


class Cli(unittest.TestCase):
    def test_help_and_version(self):
        for binary, flags in ((CONTROLLER, ["--manifests", "--grpc-listen", "--metrics-listen",
                                            "--tls-cert", "--tls-key", "--tls-ca"]),
                              (DATAPLANE, ["--controller", "--node-name", "--bind-address", "--metrics-listen",
                                           "--tls-cert", "--tls-key", "--tls-ca", "--tls-server-name"])):
            r = run([binary, "--help"])
            self.assertEqual(r.returncode, 0, r.stderr)
            for f in flags:
                self.assertIn(f, r.stdout)
            r = run([binary, "--version"])
            self.assertEqual(r.returncode, 0)
            self.assertRegex(r.stdout, r"\d+\.\d+\.\d+")

    def test_bad_flags_exit_nonzero_with_one_line(self):
        cases = [
            [CONTROLLER, "--no-such-flag"],
            [CONTROLLER, "--manifests"],
            [CONTROLLER],  # no source given
            [CONTROLLER, "--manifests", "/nonexistent/doorman", "--grpc-listen", "nonsense"],
            [DATAPLANE, "--no-such-flag"],
            [DATAPLANE],   # --controller is required
            [DATAPLANE, "--controller", "127.0.0.1:1", "--workers", "many"],
            [DATAPLANE, "--controller", "127.0.0.1:1", "--l4-splice", "sometimes"],
            [DATAPLANE, "--controller", "127.0.0.1:1", "--l4-splice", "always", "--l4-splice-pipe-size", "100"],
            [DATAPLANE, "--controller", "127.0.0.1:1", "--l4-splice-pipe-size", "65536"],  # needs --l4-splice
            [DATAPLANE, "--controller", "127.0.0.1:1", "--connection-balance", "round-robin"],
            [DATAPLANE, "--controller", "127.0.0.1"],  # no port
            [DATAPLANE, "--controller", ":20001"],  # no host
            [DATAPLANE, "--controller", "a b:20001"],
            [DATAPLANE, "--controller", "127.0.0.1:1", "--metrics-listen", "garbage"],
            [CONTROLLER, "--manifests", "/nonexistent/doorman", "--ingress-http-port", "8080", "--ingress-https-port", "8080"],
            [CONTROLLER, "--manifests", "/nonexistent/doorman", "--ingress-trusted-proxies", "10.0.0.0/8,10.0.0.1/33"],
            [CONTROLLER, "--manifests", "/nonexistent/doorman", "--ingress-trusted-proxies", "lb.example.com"],
            [CONTROLLER, "--manifests", "/nonexistent/doorman", "--ingress-default-certificate", "wildcard-tls"],
            [CONTROLLER, "--manifests", "/nonexistent/doorman", "--ingress-default-certificate", "Infra/wild"],
            [CONTROLLER, "--manifests", "/nonexistent/doorman", "--watch-namespace", "team-a"],  # needs a cluster
            [CONTROLLER, "--kubeconfig", "/nonexistent/kubeconfig", "--watch-namespace", "Team_A"],
            [CONTROLLER, "--kubeconfig", "/nonexistent/kubeconfig", "--watch-namespace", "a",
             "--ingress-default-certificate", "b/wild"],
        ] + [[DATAPLANE, "--controller", "127.0.0.1:1", "--advertise-address", a]
             for a in ("not-an-ip!", "999.1.1.1", "Bad_Host:80", "LB.example.com", "10.0.0.1/32")]
        for argv in cases:
            r = run(argv)
            self.assertNotEqual(r.returncode, 0, argv)
            lines = [l for l in r.stderr.splitlines() if l.strip()]
            self.assertGreaterEqual(len(lines), 1, argv)
            self.assertLessEqual(len(lines), 2, (argv, r.stderr))

    def test_advertise_address_takes_an_ip_or_a_dns_name(self):
        r = run([DATAPLANE, "--controller", "127.0.0.1:1", "--advertise-address", "999.1.1.1"])
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("--advertise-address: \"999.1.1.1\" is neither an IP address nor a DNS name", r.stderr)

    def test_install_separation_flags_are_validated(self):
        # --controller-class / --load-balancer-class must be able to match an object (the API
        # server's own rule for those fields); --loadbalancer-selector must be a selector the
        # API server takes, and needs a cluster.
        k = [CONTROLLER, "--kubeconfig", "/nonexistent/kubeconfig"]
        for argv, want in (
                (k + ["--controller-class", "internal"], 'invalid --controller-class "internal"'),
                (k + ["--controller-class", "example.com/a?b"], 'invalid --controller-class "example.com/a?b"'),
                (k + ["--load-balancer-class", "Bad_Domain/lb"], 'invalid --load-balancer-class "Bad_Domain/lb"'),
                (k + ["--load-balancer-class", "example.com/"], 'invalid --load-balancer-class "example.com/"'),
                (k + ["--load-balancer-class", "example.com/a/b"], 'invalid --load-balancer-class "example.com/a/b"'),
                (k + ["--loadbalancer-selector", "in=x"], '"in" is a keyword, not a key'),
                (k + ["--loadbalancer-selector", "edge in (a,b)"], "set-based requirements (in, notin) are not taken"),
                (k + ["--loadbalancer-selector", "edge=a b"], '"a b" is not a label value'),
                ([CONTROLLER, "--manifests", "/nonexistent/doorman", "--loadbalancer-selector", "edge=a"],
                 "--loadbalancer-selector needs the Kubernetes API source")):
            r = run(argv)
            self.assertEqual(r.returncode, 2, (argv, r.stderr))
            lines = [l for l in r.stderr.splitlines() if l.strip()]
            self.assertEqual(len(lines), 1, (argv, r.stderr))
            self.assertIn(want, lines[0], argv)

    def test_udp_max_flows_is_validated(self):
        r = run([DATAPLANE, "--help"])
        self.assertIn("--udp-max-flows", r.stdout)
        for value in ("0", "-5", "lots", "16777217", ""):
            r = run([DATAPLANE, "--controller", "127.0.0.1:1", "--udp-max-flows", value])
            self.assertEqual(r.returncode, 2, (value, r.stderr))
            lines = [l for l in r.stderr.splitlines() if l.strip()]
            self.assertEqual(len(lines), 1, (value, r.stderr))
            self.assertIn("udp-max-flows", lines[0])


class GrpcPortInUse(DoormanTestCase):
    def test_a_second_controller_on_the_same_grpc_address_refuses_to_start(self):
        # gRPC's default SO_REUSEPORT would let both listen and split the dataplanes between them.
        self.start_controller()
        r = subprocess.run([CONTROLLER, "--manifests", self.manifests, "--grpc-listen", "127.0.0.1:%d" % self.grpc_port,
                            "--metrics-listen", "127.0.0.1:%d" % free_port()],
                           capture_output=True, text=True, timeout=20)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("--grpc-listen: cannot listen on 127.0.0.1:%d: Address already in use" % self.grpc_port, r.stderr)
        # The reason is the one line about it: no gRPC error dump before it (helper-101).
        self.assertNotIn("WARN grpc", r.stderr)
        self.assertNotIn("No address added", r.stderr)
        self.assertTrue(self.controller.alive())


class PlaintextStreamWarning(DoormanTestCase):
    def test_the_warning_is_about_the_grpc_address(self):
        # It read the --metrics-listen host instead (helper-89): silent for --grpc-listen 0.0.0.0
        # with metrics on loopback, and warned for the documented loopback gRPC + ":9100".
        # (Listening on 0.0.0.0 for a moment; the test sends nothing but to 127.0.0.1.)
        metrics = free_port()
        ctl = self.spawn("controller-any", [CONTROLLER, "--manifests", self.manifests, "--grpc-listen",
                                            "0.0.0.0:%d" % free_port(), "--metrics-listen", "127.0.0.1:%d" % metrics])
        wait_until(lambda: http_get("http://127.0.0.1:%d/healthz" % metrics)[0] == 200, what="controller /healthz")
        wait_until(lambda: "served without TLS on a non-loopback address" in ctl.log(), what="the plaintext warning")
        ctl.stop()
        self.start_controller()  # loopback gRPC, loopback metrics: no warning
        self.assertNotIn("served without TLS", self.controller.log())


class UnprotectedKubeconfig(DoormanTestCase):
    def test_plain_http_with_a_token_and_skip_verify_are_warned(self):
        # Both are allowed, as client-go allows them, but were silent (helper-91). The API
        # address is a closed loopback port: the warnings come at start, before any request.
        closed = free_port()
        for name, cluster, want in (
                ("http", "{server: 'http://127.0.0.1:%d'}" % closed,
                 "the API server is reached over plain http: the bearer token is sent in cleartext"),
                ("skip", "{server: 'https://127.0.0.1:%d', insecure-skip-tls-verify: true}" % closed,
                 "insecure-skip-tls-verify: the API server's certificate is not checked")):
            with self.subTest(name):
                kc = os.path.join(self.tmp, "kc-" + name)
                with open(kc, "w") as f:
                    f.write("apiVersion: v1\nkind: Config\ncurrent-context: c\n"
                            "clusters: [{name: k, cluster: %s}]\n"
                            "contexts: [{name: c, context: {cluster: k, user: u}}]\n"
                            "users: [{name: u, user: {token: not-logged-7f3e}}]\n" % cluster)
                ctl = self.spawn("controller-" + name, [CONTROLLER, "--kubeconfig", kc, "--grpc-listen",
                                                        "127.0.0.1:%d" % free_port(), "--metrics-listen",
                                                        "127.0.0.1:%d" % free_port()])
                wait_until(lambda: want in ctl.log(), what="the warning")
                ctl.stop()
                self.assertNotIn("not-logged-7f3e", ctl.log())


class OutOfFileDescriptors(DoormanTestCase):
    def test_a_grpc_listener_lost_to_emfile_fails_healthz(self):
        # gRPC 1.51 closes its listening socket for good after accept4 fails (EMFILE) and says so
        # in one log line: no dataplane could connect again (audit5 F1). The controller raises
        # its soft open-files limit to the hard one at start; past that, /healthz and /readyz
        # fail so that the kubelet restarts it.
        self.grpc_port = free_port()
        self.ctl_metrics_port = free_port()
        self.controller = self.spawn("controller", [
            "prlimit", "--nofile=64:64", "--", CONTROLLER, "--manifests", self.manifests,
            "--grpc-listen", "127.0.0.1:%d" % self.grpc_port, "--metrics-listen", "127.0.0.1:%d" % self.ctl_metrics_port])
        healthz = "http://127.0.0.1:%d/healthz" % self.ctl_metrics_port
        readyz = "http://127.0.0.1:%d/readyz" % self.ctl_metrics_port
        wait_until(lambda: http_get(readyz)[0] == 200, what="controller /readyz")
        self.assertIn("open_files=64", self.controller.log())
        self.assertEqual(http_get(healthz)[0], 200)
        conns = []
        try:
            for _ in range(100):  # far more than 64 descriptors' worth
                conns.append(socket.create_connection(("127.0.0.1", self.grpc_port), timeout=5))
            wait_until(lambda: "stopped accepting connections" in self.controller.log(), what="the lost listener reported")
        finally:
            for c in conns:
                c.close()
        # Descriptors free again, the listener stays lost: the admin port says the process is broken.
        wait_until(lambda: http_get(healthz)[0] == 503, what="/healthz 503")
        st, _, body = http_get(healthz)
        self.assertIn(b"the gRPC server stopped accepting connections (Failed accept4: Too many open files)", body)
        self.assertEqual(http_get(readyz)[0], 503)
        self.assertIn("raise the open-files limit", self.controller.log())


class GarbageOnTheRoutingStream(DoormanTestCase):
    def assert_stream_refused(self, frame):
        """Sends the file `frame` as the request body of a routing stream (then half-closes it)."""
        r = subprocess.run(["curl", "-sS", "--max-time", "10", "--http2-prior-knowledge", "-H", "content-type: application/grpc",
                            "-H", "te: trailers", "--data-binary", "@" + frame, "-D", "-", "-o", "/dev/null",
                            "http://127.0.0.1:%d/doorman.v1.RoutingState/StreamRoutingState" % self.grpc_port],
                           capture_output=True, text=True, timeout=20)
        self.assertIn("grpc-status: 3", r.stdout.lower(), r.stdout + r.stderr)  # INVALID_ARGUMENT

    def test_an_unparseable_first_frame_is_refused_and_logged(self):
        self.start_controller()
        frame = os.path.join(self.tmp, "garbage.bin")
        with open(frame, "wb") as f:
            f.write(b"\x00\x00\x00\x00\x05\xff\xff\xff\xff\xff")  # a length-prefixed frame, not a protobuf
        self.assert_stream_refused(frame)
        wait_until(lambda: "stream ended before a valid Hello" in self.controller.log(), what="the warning")
        self.assertTrue(self.controller.alive())
        # Repeats (a peer resetting streams in a loop) are not a log line each: at most one a minute.
        for _ in range(10):
            self.assert_stream_refused(frame)
        self.assertEqual(self.controller.log().count("stream ended before a valid Hello"), 1, self.controller.log())
        self.assertTrue(self.controller.alive())

    def test_an_unparseable_frame_after_a_hello_is_refused_and_logged(self):
        self.start_controller()
        hello = b"\x0a\x03\x0a\x01x"  # DataplaneMessage{hello: {node_name: "x"}}
        frame = os.path.join(self.tmp, "hello-garbage.bin")
        with open(frame, "wb") as f:
            f.write(b"\x00" + struct.pack(">I", len(hello)) + hello)
            f.write(b"\x00\x00\x00\x00\x05\xff\xff\xff\xff\xff")
        self.assert_stream_refused(frame)
        wait_until(lambda: "dataplane stream ended without a cancel" in self.controller.log(), what="the warning")
        self.assertIn("dataplane connected node=x ", self.controller.log())  # the Hello was read first
        self.assertTrue(self.controller.alive())

    def test_a_dataplane_that_stops_is_not_warned_about(self):
        self.start_controller()
        self.start_dataplane()
        wait_until(lambda: "dataplane connected" in self.controller.log(), what="the dataplane connects")
        line = [l for l in self.controller.log().splitlines() if "dataplane connected" in l][0]
        self.assertIn(" peer=ipv4:127.0.0.1:", line)  # where the stream comes from
        self.dataplane.stop()
        wait_until(lambda: "dataplane disconnected" in self.controller.log(), what="the disconnect")
        self.assertNotIn("ended without a cancel", self.controller.log())


def service_with_slice(name, port, backend, spec_extra="", conditions=""):
    """A doorman Service of type LoadBalancer and its EndpointSlice (127.0.0.1:backend)."""
    return ("apiVersion: v1\nkind: Service\nmetadata: {name: %s, namespace: default}\n"
            "spec:\n  type: LoadBalancer\n  loadBalancerClass: doorman.dev/lb\n%s"
            "  ports: [{name: p, port: %d}]\n---\n"
            "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n"
            "metadata: {name: %s-1, namespace: default, labels: {kubernetes.io/service-name: %s}}\n"
            "addressType: IPv4\nports: [{name: p, port: %d}]\n"
            "endpoints: [{addresses: [127.0.0.1]%s}]\n") % (
                name, spec_extra, port, name, name, backend, ", conditions: {%s}" % conditions if conditions else "")


class ManifestsMeetTheCrdSchema(DoormanTestCase):
    """--manifests: no API server validates the files, so the compiled-in LoadBalancer CRD schema
    is applied: what `kubectl apply` would refuse is not routed either."""

    def test_a_loadbalancer_beyond_the_crds_limits_is_refused(self):
        over = free_port()
        self.write_manifest("lb.yaml", (
            "apiVersion: doorman.dev/v1alpha1\nkind: LoadBalancer\nmetadata: {name: fast, namespace: default}\n"
            "spec:\n  listeners: [{name: web, port: %d, protocol: HTTP}]\n"
            "  routes:\n    - {name: a, listener: web, policy: {rateLimit: {requestsPerSecond: 2000000}},\n"
            "       backends: [{endpoints: [{address: 127.0.0.1, port: 1}]}]}\n"
            "    - {name: home, listener: web, filters: {redirect: {scheme: https}}}\n") % over)  # no backends: fine
        self.start_controller()

        def status():
            objs = json.loads(http_get("http://127.0.0.1:%d/debug/status" % self.ctl_metrics_port)[2])["objects"]
            return [o for o in objs if o["name"] == "fast"]
        st = wait_until(status, what="the object's status")[0]
        self.assertFalse(st["accepted"], st)
        self.assertEqual(st["field"], "spec.routes[0].policy.rateLimit.requestsPerSecond")
        self.assertIn("less than or equal to 1000000 (the LoadBalancer CRD's schema)", st["message"])

    def test_a_misspelt_service_field_is_refused_not_ignored(self):
        # "loadBalancerSourceRange" (no s): ignored, it would open the port to every client.
        # kubectl apply (strict field validation) refuses it; so does --manifests.
        bad, good = free_port(), free_port()
        backend = self.start_backend("b")
        self.write_manifest("svc.yaml", service_with_slice("typo", bad, backend, "  loadBalancerSourceRange: [127.0.0.9/32]\n") +
                            "---\n" + service_with_slice("ok", good, backend, "  loadBalancerSourceRanges: [127.0.0.9/32]\n"))
        self.start_controller()
        self.start_dataplane()
        self.wait_converged()

        def status(name):
            objs = json.loads(http_get("http://127.0.0.1:%d/debug/status" % self.ctl_metrics_port)[2])["objects"]
            return [o for o in objs if o["name"] == name]
        st = wait_until(lambda: status("typo"), what="the object's status")[0]
        self.assertFalse(st["accepted"], st)
        self.assertEqual(st["field"], "spec.loadBalancerSourceRange")
        self.assertIn('did you mean "loadBalancerSourceRanges"', st["message"])
        self.assertTrue(status("ok")[0]["accepted"], status("ok"))
        # Every kind is counted, not only LoadBalancers (helper-89).
        m = self.controller_metrics()
        self.assertEqual(metric_value(m, "doorman_controller_objects", {"kind": "Service", "accepted": "false"}), 1)
        self.assertEqual(metric_value(m, "doorman_controller_objects", {"kind": "Service", "accepted": "true"}), 1)
        self.assertEqual(metric_value(m, "doorman_controller_objects", {"kind": "Ingress", "accepted": "true"}), 0)
        wait_until(lambda: port_open(good), what="the correct Service's port")
        self.assertFalse(port_open(bad), "the misspelt Service is not served")
        # The allow-list the correct Service names holds: 127.0.0.1 is not in 127.0.0.9/32.
        try:
            with socket.create_connection(("127.0.0.1", good), timeout=5) as s:
                s.settimeout(5)
                got = s.recv(1)
        except ConnectionResetError:
            got = b""  # refused at accept: closed with a reset (before or after connect returned)
        self.assertEqual(got, b"")


    def test_a_misspelt_or_mistyped_endpoint_slice_field_refuses_the_slice(self):
        # "conditions: {redy: false}" or "ready: \"false\"" (a string): ignored, the endpoint would
        # count as ready and be served. An EndpointSlice has no status: the document is refused
        # with a manifest error instead.
        typo, quoted, good = free_port(), free_port(), free_port()
        backend = self.start_backend("b")
        self.write_manifest("typo.yaml", service_with_slice("typo", typo, backend, conditions="redy: false"))
        self.write_manifest("quoted.yaml", service_with_slice("quoted", quoted, backend, conditions='ready: "false"'))
        self.write_manifest("ok.yaml", service_with_slice("ok", good, backend, conditions="terminating: false"))
        self.start_controller()
        self.start_dataplane()
        self.wait_converged()
        errors = sorted(json.loads(http_get("http://127.0.0.1:%d/debug/status" % self.ctl_metrics_port)[2])["manifestErrors"])
        self.assertEqual(len(errors), 2, errors)
        self.assertIn("quoted.yaml", errors[0])
        self.assertIn("EndpointSlice default/quoted-1: endpoints[0].conditions.ready: must be a boolean, not a string",
                      errors[0])
        self.assertIn("typo.yaml", errors[1])
        self.assertIn('EndpointSlice default/typo-1: endpoints[0].conditions.redy: unknown field '
                      '(did you mean "ready"?)', errors[1])
        self.assertIn("conditions.redy", self.controller.log())
        # The correct Service is served; those whose slice was refused have no endpoint.
        self.assertEqual(http_get("http://127.0.0.1:%d/" % good)[0], 200)
        for port in (typo, quoted):
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                    s.settimeout(5)
                    s.sendall(b"GET / HTTP/1.0\r\n\r\n")
                    got = s.recv(100)
            except (ConnectionResetError, ConnectionRefusedError):
                got = b""
            self.assertEqual(got, b"", "no backend behind the refused slice on :%d" % port)

class ManifestDirEntries(DoormanTestCase):
    def test_entries_that_are_not_files_are_warned_once(self):
        os.symlink(os.path.join(self.tmp, "missing.yaml"), os.path.join(self.manifests, "dangling.yaml"))
        os.mkdir(os.path.join(self.manifests, "dir.yaml"))
        self.start_controller()
        version = self.controller_version()
        # A change makes it rescan the directory: the two entries are not warned again.
        self.write_manifest("ok.yaml", "apiVersion: doorman.dev/v1alpha1\nkind: LoadBalancer\nmetadata: {name: a}\n"
                            "spec:\n  listeners: [{name: t, port: %d, protocol: TCP}]\n"
                            "  routes: [{name: r, listener: t, backends: [{endpoints: [{address: 127.0.0.1, port: 1}]}]}]\n"
                            % free_port())
        wait_until(lambda: self.controller_version() != version, what="the rescan")
        lines = self.controller.log().splitlines()
        for name in ("dangling.yaml", "dir.yaml"):
            warned = [l for l in lines if "not a readable file, skipped" in l and name in l]
            self.assertEqual(len(warned), 1, lines)


class TlsFlags(unittest.TestCase):
    """--tls-cert/--tls-key/--tls-ca: all three or none; unreadable or invalid files exit 2 with one
    line naming the file and never any file content."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="doorman-cli-tls-")
        pki = Pki(cls.tmp)
        cls.ca = pki.ca("ca")
        cls.cert = pki.issue("node", cls.ca, ["DNS:localhost"], "serverAuth,clientAuth")
        cls.other = pki.issue("other", cls.ca, ["DNS:localhost"], "serverAuth,clientAuth")
        cls.garbage = os.path.join(cls.tmp, "garbage.pem")
        with open(cls.garbage, "w") as f:
            f.write("not a certificate\n")
        cls.unreadable = os.path.join(cls.tmp, "unreadable.key")
        shutil.copyfile(cls.cert[1], cls.unreadable)
        os.chmod(cls.unreadable, 0)
        cls.secrets = pki.key_material()
        cls.manifests = os.path.join(cls.tmp, "manifests")
        os.makedirs(cls.manifests)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def argv(self, binary, tls):
        # Everything else valid, so only the TLS flags can be what fails.
        if binary == CONTROLLER:
            return [CONTROLLER, "--manifests", self.manifests, "--grpc-listen", "127.0.0.1:0",
                    "--metrics-listen", "127.0.0.1:0"] + tls
        return [DATAPLANE, "--controller", "127.0.0.1:1", "--metrics-listen", "127.0.0.1:0"] + tls

    def expect_exit2(self, binary, tls, want):
        r = run(self.argv(binary, tls))
        lines = [l for l in r.stderr.splitlines() if l.strip()]
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertEqual(len(lines), 1, r.stderr)
        self.assertIn(want, lines[0])
        out = r.stdout + r.stderr
        self.assertNotIn("PRIVATE KEY", out)
        for s in self.secrets:
            self.assertNotIn(s, out)

    def test_all_three_or_none(self):
        crt, key = self.cert
        ca = self.ca[0]
        for binary in (CONTROLLER, DATAPLANE):
            for tls, missing in ((["--tls-cert", crt], "missing --tls-key, --tls-ca"),
                                 (["--tls-key", key], "missing --tls-cert, --tls-ca"),
                                 (["--tls-ca", ca], "missing --tls-cert, --tls-key"),
                                 (["--tls-cert", crt, "--tls-key", key], "missing --tls-ca")):
                with self.subTest(binary=os.path.basename(binary), tls=tls[::2]):
                    self.expect_exit2(binary, tls, "--tls-cert, --tls-key and --tls-ca must be given together (%s)"
                                      % missing)
        self.expect_exit2(DATAPLANE, ["--tls-server-name", "controller.test"],
                          "--tls-server-name needs --tls-cert, --tls-key and --tls-ca")
        r = run([CONTROLLER, "--tls-server-name", "x"])
        self.assertEqual(r.returncode, 2)
        self.assertIn("unknown flag", r.stderr)

    def test_a_kubeconfig_client_key_that_cannot_be_used_exits_2(self):
        # It used to be dropped silently: every request went out anonymous and got 401 (audit6 F8).
        import base64

        def b64(path):
            with open(path, "rb") as f:
                return base64.b64encode(f.read()).decode()
        crt = self.cert[0]
        for name, key_file, want in (("mismatch", self.other[1], "client-key does not match client-certificate"),
                                     ("garbage", self.garbage, "client-key is not an unencrypted PEM private key"),
                                     ("swapped", crt, "client-key is not an unencrypted PEM private key")):
            with self.subTest(name):
                kc = os.path.join(self.tmp, "kc-" + name)
                with open(kc, "w") as f:
                    f.write("apiVersion: v1\nkind: Config\ncurrent-context: c\n"
                            "clusters: [{name: k, cluster: {server: 'https://127.0.0.1:1', insecure-skip-tls-verify: true}}]\n"
                            "contexts: [{name: c, context: {cluster: k, user: u}}]\n"
                            "users: [{name: u, user: {client-certificate-data: %s, client-key-data: %s}}]\n"
                            % (b64(crt), b64(key_file)))
                r = run([CONTROLLER, "--kubeconfig", kc, "--grpc-listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"])
                lines = [l for l in r.stderr.splitlines() if l.strip()]
                self.assertEqual(r.returncode, 2, r.stderr)
                self.assertEqual(len(lines), 1, r.stderr)
                self.assertIn(kc, lines[0])
                self.assertIn(want, lines[0])
                out = r.stdout + r.stderr
                self.assertNotIn("PRIVATE KEY", out)
                for secret in self.secrets:
                    self.assertNotIn(secret, out)

    def test_bad_files_are_named(self):
        crt, key = self.cert
        ca = self.ca[0]
        missing = os.path.join(self.tmp, "missing.crt")
        cases = [
            (tls_flags(missing, key, ca), "--tls-cert %s: cannot read (No such file or directory)" % missing),
            (tls_flags(crt, missing, ca), "--tls-key %s: cannot read (No such file or directory)" % missing),
            (tls_flags(crt, key, missing), "--tls-ca %s: cannot read (No such file or directory)" % missing),
            (tls_flags(self.garbage, key, ca), "--tls-cert %s: no PEM certificate in the file" % self.garbage),
            # The key given as the certificate and the other way round: named, key never echoed.
            (tls_flags(key, crt, ca), "--tls-cert %s: no PEM certificate in the file" % key),
            (tls_flags(crt, crt, ca), "--tls-key %s: no unencrypted PEM private key in the file" % crt),
            (tls_flags(crt, self.garbage, ca), "--tls-key %s: no unencrypted PEM private key" % self.garbage),
            (tls_flags(crt, self.other[1], ca),
             "--tls-key %s does not match the certificate in --tls-cert %s" % (self.other[1], crt)),
            (tls_flags(crt, key, key), "--tls-ca %s: no PEM certificate in the file" % key),
        ]
        if os.geteuid() != 0:  # root reads a mode-000 file anyway
            cases.append((tls_flags(crt, self.unreadable, ca),
                          "--tls-key %s: cannot read (Permission denied)" % self.unreadable))
        for binary in (CONTROLLER, DATAPLANE):
            for tls, want in cases:
                with self.subTest(binary=os.path.basename(binary), want=want):
                    self.expect_exit2(binary, tls, want)


class DebugPagesAnswerOnLoopbackOnly(unittest.TestCase):
    """/debug/* show routing state and backend addresses: a client that is not on a loopback
    address gets 403 unless --debug-remote; /metrics and /healthz answer everyone. Runs in a
    network namespace of its own (unshare --net, as root), where 192.0.2.1 is a second address
    of lo: a peer that is not loopback, without traffic leaving the namespace."""

    SCRIPT = r"""
set -eu
ip link set lo up
ip addr add 192.0.2.1/32 dev lo
"$@" --metrics-listen 0.0.0.0:9100 >"$LOG" 2>&1 &
pid=$!
trap 'kill $pid; wait $pid || true' EXIT
for _ in $(seq 200); do curl -s -o /dev/null http://127.0.0.1:9100/healthz && break; sleep 0.05; done
code() { curl -s --max-time 5 -o /dev/null -w '%{http_code}' "$@"; }
for path in /metrics /healthz $DEBUG_PATH; do
  echo "loopback $path $(code http://127.0.0.1:9100$path)"
  echo "remote $path $(code --interface 192.0.2.1 http://192.0.2.1:9100$path)"
done
"""

    def setUp(self):
        if os.geteuid() != 0:
            self.skipTest("needs root for a network namespace (unshare --net)")
        self.tmp = tempfile.mkdtemp(prefix="doorman-debug-")
        self.addCleanup(shutil.rmtree, self.tmp, True)

    def codes(self, argv, debug_path):
        log = os.path.join(self.tmp, "log")
        r = subprocess.run(["unshare", "--net", "bash", "-c", self.SCRIPT, "script"] + argv,
                           capture_output=True, text=True, timeout=30,
                           env=dict(os.environ, LOG=log, DEBUG_PATH=debug_path))
        with open(log) as f:
            self.assertEqual(r.returncode, 0, r.stderr + f.read())
        return dict((" ".join(line.split()[:2]), int(line.split()[2])) for line in r.stdout.splitlines())

    def test_both_binaries(self):
        manifests = os.path.join(self.tmp, "m")
        os.mkdir(manifests)
        for argv, path in (([DATAPLANE, "--controller", "127.0.0.1:1"], "/debug/config"),
                           ([CONTROLLER, "--manifests", manifests, "--grpc-listen", "127.0.0.1:18000"], "/debug/status")):
            with self.subTest(binary=os.path.basename(argv[0])):
                codes = self.codes(argv, path)
                self.assertEqual(codes["loopback " + path], 200, codes)
                self.assertEqual(codes["remote " + path], 403, codes)
                self.assertEqual(codes["remote /metrics"], 200, codes)
                self.assertEqual(codes["remote /healthz"], 200, codes)
                codes = self.codes(argv + ["--debug-remote"], path)
                self.assertEqual(codes["remote " + path], 200, codes)


if __name__ == "__main__":
    unittest.main(verbosity=2)
