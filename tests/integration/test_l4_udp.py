#!/usr/bin/env python3
"""L4 UDP end to end: the real `dig` through a Doorman UDP listener to real `dnsmasq` backends
(each answers x.test with its own address), flow pinning per client address:port, replies from
the listener's address, scheduler choice per flow, idle expiry of the flow table, and a full flow
table (--udp-max-flows): new flows dropped and counted, existing ones kept, room again on expiry.
"""
import collections
import os
import socket
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import DoormanTestCase, metric_value, wait_until  # noqa: E402


def free_udp_port():
    """A port free for both UDP and TCP on 127.0.0.1 (dnsmasq binds both for DNS)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.bind(("127.0.0.1", 0))
            port = u.getsockname()[1]
            try:
                with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
                    t.bind(("127.0.0.1", port))
                return port
            except OSError:
                continue
    raise AssertionError("no port free for both TCP and UDP")


def dns_query(name, qid=0x1234):
    q = qid.to_bytes(2, "big") + b"\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00"
    for label in name.split("."):
        q += bytes([len(label)]) + label.encode()
    return q + b"\x00\x00\x01\x00\x01"


def answer_ip(reply):
    """The last 4 bytes of a one-A-record reply are the address."""
    return socket.inet_ntoa(reply[-4:])


class UdpPeers(DoormanTestCase):
    """Three dnsmasq backends and the helpers; the tests are in the subclasses."""

    def setUp(self):
        super().setUp()
        self.backends = {}
        for i in (11, 12, 13):
            port = free_udp_port()
            self.spawn("dnsmasq-%d" % i, [
                "dnsmasq", "--no-daemon", "--no-resolv", "--no-hosts", "--bind-interfaces",
                "--listen-address=127.0.0.1", "--port=%d" % port, "--user=root",
                "--pid-file=", "--address=/x.test/127.0.0.%d" % i, "--log-facility=-"])
            self.backends[port] = "127.0.0.%d" % i
        for port in self.backends:
            wait_until(lambda: self.ask_direct(port), what="dnsmasq on :%d" % port)
        self.port = free_udp_port()

    def ask_direct(self, port, src="127.0.0.1", timeout=0.3):
        """The answer, or None after `timeout` (short where silence is expected, longer where
        an answer is: a loaded machine can be slower than 0.3 s)."""
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind((src, 0))
            s.settimeout(timeout)
            s.sendto(dns_query("x.test"), ("127.0.0.1", port))
            try:
                return s.recvfrom(512)[0]
            except socket.timeout:
                return None

    def start(self, scheduler="round-robin", idle="30s", dataplane_args=("--workers", "2"), accept=False,
              ranges=None, sticky=False, route_idle=None):
        self.write_dns_manifest(self.backends, scheduler, idle, accept, ranges, sticky, route_idle)
        self.start_controller()
        self.start_dataplane(list(dataplane_args))
        self.version = self.wait_converged()
        if accept:
            wait_until(lambda: self.listener_ready(), what="UDP listener")
        else:
            src = "127.0.0.2" if ranges else "127.0.0.1"
            wait_until(lambda: self.ask_direct(self.port, src), what="UDP listener answers")

    def listener_ready(self):
        return "udp-%d" % self.port in self.dataplane.log()

    def write_dns_manifest(self, backends, scheduler, idle, accept=False, ranges=None, sticky=False, route_idle=None):
        pp = ", proxyProtocol: {accept: true}" if accept else ""
        policy = "scheduler: " + scheduler
        if sticky:
            policy += ", stickiness: {type: SourceIP, ttl: 1h}"
        if route_idle:
            policy += ", timeouts: {idle: %s}" % route_idle
        if ranges:
            pp += ", allowedSourceRanges: [%s]" % ", ".join(ranges)
        eps = "".join("            - {address: 127.0.0.1, port: %d}\n" % p for p in backends)
        self.write_manifest("dns.yaml", f"""\
apiVersion: doorman.dev/v1alpha1
kind: LoadBalancer
metadata: {{name: dns, namespace: default}}
spec:
  listeners:
    - {{name: dns, port: {self.port}, protocol: UDP, idleTimeout: {idle}{pp}}}
  routes:
    - name: r
      listener: dns
      policy: {{{policy}}}
      backends:
        - endpoints:
{eps}""")

    def dig(self):
        out = subprocess.run(["dig", "+short", "+tries=1", "+time=2", "@127.0.0.1", "-p", str(self.port), "x.test"],
                             capture_output=True, text=True, timeout=10)
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        return out.stdout.strip()

    def active(self):
        return metric_value(self.dataplane_metrics(), "doorman_l4_connections_active", {"listener": "udp-%d" % self.port}) or 0


class Udp(UdpPeers):
    def test_a_waiting_flow_holds_no_datagram_buffer(self):
        # 1000 flows (a client address each), all waiting for a reply that already came: the
        # dataplane's memory grows by the flows' bookkeeping, not by a 64 KiB buffer apiece
        # (which would be 64 MiB here, 1 GiB at the default cap of 16384 flows per worker).
        self.start(dataplane_args=("--workers", "1"))

        def rss_kib():
            with open("/proc/%d/status" % self.dataplane.p.pid) as f:
                return int(next(line for line in f if line.startswith("VmRSS:")).split()[1])

        before_flows, before = self.active(), rss_kib()
        for i in range(1000):
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as c:
                c.settimeout(3)
                c.bind(("127.1.%d.%d" % (i // 250, i % 250 + 1), 0))  # a source port may be reused
                c.sendto(dns_query("x.test"), ("127.0.0.1", self.port))
                c.recvfrom(512)
        self.assertEqual(self.active() - before_flows, 1000)
        grown = rss_kib() - before
        self.assertLess(grown, 16 * 1024, "RSS grew by %d KiB for 1000 flows" % grown)

    def test_udp_flows_leave_half_the_descriptors_to_everything_else(self):
        # Each flow holds a socket. With 300 descriptors, UDP flows of all workers together stop
        # at 150: a client cycling addresses (or source ports) gets no more, and the dataplane's
        # other sockets (here its metrics endpoint, in a real one TCP and HTTP) keep theirs.
        self.write_dns_manifest(self.backends, "round-robin", "30s")
        self.start_controller()
        self.start_dataplane(["--workers", "2"], prefix=["prlimit", "--nofile=300:300", "--"])
        self.wait_converged()
        wait_until(lambda: self.ask_direct(self.port), what="UDP listener answers")
        self.assertIn("open_files=300", self.dataplane.log())
        before = self.active()  # the readiness probes' flows
        answered = 0
        for i in range(200):
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as c:
                c.settimeout(0.3)
                c.bind(("127.1.%d.%d" % (i // 250, i % 250 + 1), 0))
                c.sendto(dns_query("x.test"), ("127.0.0.1", self.port))
                try:
                    c.recvfrom(512)
                    answered += 1
                except socket.timeout:
                    pass
        m = self.dataplane_metrics()  # answers: descriptors were left for it
        self.assertEqual(metric_value(m, "doorman_l4_connections_active", {"listener": "udp-%d" % self.port}), 150)
        self.assertLessEqual(answered, 150 - before)  # a reply later than 0.3 s is not counted here
        self.assertGreater(answered, 0)
        self.assertEqual(metric_value(m, "doorman_l4_drops_total",
                                      {"listener": "udp-%d" % self.port, "reason": "udp_table_full"}), 200 - (150 - before))

    def test_dig_round_robin_over_three_dnsmasq_backends(self):
        self.start()
        answers = collections.Counter(self.dig() for _ in range(30))  # each dig = a new source port = a flow
        self.assertEqual(set(answers), {"127.0.0.11", "127.0.0.12", "127.0.0.13"}, answers)
        self.assertTrue(all(8 <= n <= 12 for n in answers.values()), answers)

    def test_a_backend_port_that_refuses_is_ejected(self):
        # A fourth endpoint where nothing listens: each datagram sent there comes back as ICMP
        # port unreachable. Its flows end at once, and 5 refusals in a row eject it (the shared
        # passive outlier detector), so later flows all reach a live dnsmasq.
        dead = free_udp_port()
        self.backends[dead] = "dead"
        self.start()
        answered = [self.ask_direct(self.port, timeout=0.3 if i < 40 else 2.0) is not None for i in range(60)]
        self.assertIn(False, answered[:12], "round-robin reaches the dead endpoint early on")
        self.assertEqual(answered[-20:], [True] * 20, answered)
        m = self.dataplane_metrics()
        self.assertGreaterEqual(metric_value(m, "doorman_l4_outlier_ejections_total", {"backend": "127.0.0.1:%d" % dead}) or 0, 1)
        self.assertGreaterEqual(metric_value(m, "doorman_l4_drops_total",
                                             {"listener": "udp-%d" % self.port, "reason": "connect_failed"}) or 0, 1)

    def test_a_client_pinned_to_a_refusing_port_is_not_sent_back_there(self):
        # Source-IP stickiness (sessionAffinity: ClientIP) and one endpoint where nothing listens.
        # One worker, round-robin over the two: a client whose first pick is the dead port gets
        # ICMP port unreachable, and its pin is dropped, so its next query takes the next pick (the
        # live dnsmasq) instead of the dead port again. Three clients: fewer refusals than the 5
        # that would eject the port, so ejection is not what rescues them.
        live = next(iter(self.backends))
        dead = free_udp_port()
        self.backends = {live: self.backends[live], dead: "dead"}
        self.start(dataplane_args=("--workers", "1"), sticky=True)
        first, second = [], []
        for i in range(3):
            src = "127.0.0.%d" % (31 + i)
            first.append(self.ask_direct(self.port, src) is not None)
            second.append(self.ask_direct(self.port, src, timeout=2.0) is not None)
        self.assertIn(False, first, "no client was pinned to the dead port first")
        self.assertEqual(second, [True] * 3, (first, second))
        self.assertFalse(metric_value(self.dataplane_metrics(), "doorman_l4_outlier_ejections_total",
                                      {"backend": "127.0.0.1:%d" % dead}))

    def test_flow_is_pinned_and_replies_come_from_the_listener(self):
        self.start()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(2)
            seen = set()
            for i in range(10):
                s.sendto(dns_query("x.test", i), ("127.0.0.1", self.port))
                reply, src = s.recvfrom(512)
                self.assertEqual(src, ("127.0.0.1", self.port))  # from the address we sent to
                self.assertEqual(reply[:2], i.to_bytes(2, "big"))
                seen.add(answer_ip(reply))
            self.assertEqual(len(seen), 1, seen)

    def test_allowed_source_ranges_refuse_other_senders(self):
        self.start(ranges=["127.0.0.2/32"])  # the readiness probe came from 127.0.0.2

        def drops():
            return metric_value(self.dataplane_metrics(), "doorman_l4_drops_total",
                                {"listener": "udp-%d" % self.port, "reason": "source_range"}) or 0
        flows = self.active()
        for src in ("127.0.0.1", "127.0.0.3"):
            self.assertIsNone(self.ask_direct(self.port, src), src)
        wait_until(lambda: drops() == 2, what="two refused datagrams counted")
        self.assertEqual(self.active(), flows)  # no flow opened for them
        self.assertIsNotNone(self.ask_direct(self.port, "127.0.0.2"))

    def test_maglev_pins_a_client_address_across_flows(self):
        self.start(scheduler="maglev")
        self.assertEqual(len({self.dig() for _ in range(10)}), 1)

    def test_idle_flows_expire(self):
        self.start(idle="1s")
        wait_until(lambda: self.active() == 0, what="probe flows expired")
        for _ in range(5):
            self.dig()
        self.assertGreaterEqual(self.active(), 1)
        wait_until(lambda: self.active() == 0, timeout=6, what="flows expired after idle 1s")
        self.assertIn(self.dig(), self.backends.values())  # a new flow after expiry

    def test_the_routes_idle_timeout_overrides_the_listeners(self):
        # policy.timeouts.idle before Listener.idleTimeout, as for TCP (it was ignored for UDP).
        self.start(idle="60s", route_idle="1s")
        wait_until(lambda: self.active() == 0, what="probe flows expired")
        for _ in range(5):
            self.dig()
        self.assertGreaterEqual(self.active(), 1)
        wait_until(lambda: self.active() == 0, timeout=6, what="flows expired after the route's idle 1s")

    def test_flow_to_a_removed_endpoint_moves_on_its_next_datagram(self):
        # As IPVS expires a UDP connection to a removed real server on its next packet
        # (kube-proxy: expire_nodest_conn): no drain for UDP, the idle timeout here is long.
        self.start(idle="60s")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(2)

            def ask(qid):
                s.sendto(dns_query("x.test", qid), ("127.0.0.1", self.port))
                reply, _ = s.recvfrom(512)
                self.assertEqual(reply[:2], qid.to_bytes(2, "big"))
                return answer_ip(reply)

            pinned = ask(1)
            gone = [p for p, ip in self.backends.items() if ip == pinned][0]
            self.assertEqual(ask(2), pinned)  # pinned while its endpoint is routed
            self.write_dns_manifest([p for p in self.backends if p != gone], "round-robin", "60s")
            self.version = self.wait_version_change(self.version)
            # The very next datagram of the same client flow reaches an endpoint still routed,
            # and the flow stays there.
            others = [ip for p, ip in self.backends.items() if p != gone]
            moved = ask(3)
            self.assertIn(moved, others)
            for qid in range(4, 8):
                self.assertEqual(ask(qid), moved)

    def test_proxy_v2_header_on_every_datagram_is_stripped_and_its_source_hashed(self):
        self.start(scheduler="maglev", accept=True)

        def v2(src):  # PROXY v2, PROXY command, UDP over IPv4 (0x12), src:5353 -> 127.0.0.1:53
            return (b"\r\n\r\n\x00\r\nQUIT\n\x21\x12\x00\x0c" + socket.inet_aton(src) +
                    socket.inet_aton("127.0.0.1") + (5353).to_bytes(2, "big") + (53).to_bytes(2, "big"))

        def ask(src, qid=7):
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.settimeout(2)
                for i in range(2):  # two datagrams on the flow: each carries (and loses) its header
                    s.sendto(v2(src) + dns_query("x.test", qid + i), ("127.0.0.1", self.port))
                    reply, peer = s.recvfrom(512)
                    self.assertEqual(peer, ("127.0.0.1", self.port))
                    self.assertEqual(reply[:2], (qid + i).to_bytes(2, "big"))  # dnsmasq saw a bare query
                return answer_ip(reply)

        # The client in the header is what maglev hashes: the same one lands on the same backend
        # from any sender port, and different ones spread.
        self.assertEqual(len({ask("198.51.100.20") for _ in range(5)}), 1)
        self.assertGreater(len({ask("198.51.100.%d" % i) for i in range(30, 50)}), 1)
        # A datagram without a v2 header is dropped and counted; a v1 header too (stream only).
        def drops():
            return metric_value(self.dataplane_metrics(), "doorman_l4_drops_total",
                                {"listener": "udp-%d" % self.port, "reason": "proxy_protocol"}) or 0
        before = drops()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(0.5)
            s.sendto(dns_query("x.test"), ("127.0.0.1", self.port))
            s.sendto(b"PROXY TCP4 1.2.3.4 127.0.0.1 1 53\r\n" + dns_query("x.test"), ("127.0.0.1", self.port))
            wait_until(lambda: drops() == before + 2, what="2 datagrams dropped as proxy_protocol")
            with self.assertRaises(socket.timeout):
                s.recvfrom(512)

    def table_full_drops(self):
        return metric_value(self.dataplane_metrics(), "doorman_l4_drops_total",
                            {"listener": "udp-%d" % self.port, "reason": "udp_table_full"}) or 0

    def test_full_flow_table_drops_new_flows_keeps_old_ones_and_frees_room_on_expiry(self):
        # Idle 4 s: the pinned flows must outlive the drop checks below on a loaded machine.
        self.start(idle="4s", dataplane_args=("--workers", "1", "--udp-max-flows", "4"))
        wait_until(lambda: self.active() == 0, what="readiness-probe flows expired")
        clients = []
        for _ in range(6):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self.addCleanup(s.close)
            s.bind(("127.0.0.1", 0))  # one client address:port each = one flow each
            clients.append(s)
        flows, extra = clients[:4], clients[4:]

        def exchange(s, qid):
            s.settimeout(2)
            s.sendto(dns_query("x.test", qid), ("127.0.0.1", self.port))
            reply, src = s.recvfrom(512)
            self.assertEqual((src, reply[:2]), (("127.0.0.1", self.port), qid.to_bytes(2, "big")))
            return answer_ip(reply)

        pinned = [exchange(s, i) for i, s in enumerate(flows)]
        self.assertEqual(self.active(), 4)
        self.assertEqual(self.table_full_drops(), 0)
        # The table is full: a fifth and sixth client address get no flow, and each datagram counts.
        for i, s in enumerate(extra):
            s.sendto(dns_query("x.test", 100 + i), ("127.0.0.1", self.port))
        wait_until(lambda: self.table_full_drops() == 2, timeout=5, what="2 datagrams dropped as udp_table_full")
        for s in extra:
            s.settimeout(0.3)
            with self.assertRaises(socket.timeout):
                s.recvfrom(512)
        self.assertEqual(self.active(), 4)
        # The four flows keep working, each on the backend it was pinned to.
        self.assertEqual([exchange(s, 10 + i) for i, s in enumerate(flows)], pinned)
        self.assertEqual(self.table_full_drops(), 2)
        # Once they expire (idle 4 s, swept every second), new clients get flows again.
        wait_until(lambda: self.active() == 0, timeout=10, what="flows expired after idle 4s")
        self.assertIn(exchange(extra[0], 200), self.backends.values())
        self.assertIn(exchange(extra[1], 201), self.backends.values())
        self.assertEqual(self.table_full_drops(), 2)
        self.assertEqual(self.active(), 2)



class UdpInNetns(UdpPeers):
    """Runs only inside the network namespace UdpWildcardBind makes (there, any 127.0.0.0/8
    address is a local address of lo, like a VIP or a node's second address)."""

    def setUp(self):
        if os.environ.get("DOORMAN_IN_NETNS") != "1":
            self.skipTest("runs inside UdpWildcardBind's network namespace")
        subprocess.run(["ip", "link", "set", "lo", "up"], check=True, timeout=10)
        super().setUp()

    def test_a_wildcard_listener_answers_from_the_address_each_client_used(self):
        self.start(dataplane_args=("--workers", "2", "--bind-address", "0.0.0.0"))
        self.assertIn("bind_address=0.0.0.0", self.dataplane.log())
        before = self.active()  # the readiness probes' flows
        for dst in ("127.0.0.1", "127.0.0.2", "127.0.0.77"):
            # A connected socket (what resolvers use) takes only datagrams from where it sent.
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as c:
                c.settimeout(3)
                c.bind(("127.0.0.50", 0))
                c.connect((dst, self.port))
                c.send(dns_query("x.test"))
                self.assertIn(answer_ip(c.recv(512)), self.backends.values(), dst)
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as c:
                c.settimeout(3)
                c.sendto(dns_query("x.test"), (dst, self.port))
                _, source = c.recvfrom(512)
                self.assertEqual(source, (dst, self.port))
        # One client port talking to two local addresses: two flows, each answered from its own.
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as c:
            c.settimeout(3)
            c.bind(("127.0.0.60", 0))
            for dst in ("127.0.0.3", "127.0.0.4", "127.0.0.3"):
                c.sendto(dns_query("x.test"), (dst, self.port))
                self.assertEqual(c.recvfrom(512)[1], (dst, self.port))
        self.assertEqual(self.active() - before, 2 * 3 + 2, "a flow per client address:port and local address")


class UdpWildcardBind(unittest.TestCase):
    """A dataplane bound to 0.0.0.0 (the DaemonSet's default) with clients sending to several
    local addresses: each reply must leave from the address its client sent to, or a connected
    client drops it. In a network namespace of its own (unshare --net, as root)."""

    def test_replies_leave_from_the_address_each_client_used(self):
        if os.geteuid() != 0:
            self.skipTest("needs root for a network namespace (unshare --net)")
        r = subprocess.run(["unshare", "--net", sys.executable, os.path.abspath(__file__),
                            "UdpInNetns.test_a_wildcard_listener_answers_from_the_address_each_client_used"],
                           capture_output=True, text=True, timeout=120, env=dict(os.environ, DOORMAN_IN_NETNS="1"))
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("OK", r.stderr)
        self.assertNotIn("skipped", r.stderr)

if __name__ == "__main__":
    unittest.main(verbosity=2)
