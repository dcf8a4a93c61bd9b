#!/usr/bin/env python3
"""PROXY protocol end to end (Listener.proxy_protocol): Doorman sends v1/v2 to a real nginx
whose `listen ... proxy_protocol` reports $proxy_protocol_addr — the true client address;
Doorman accepts v1/v2 from downstream (as behind another balancer) and passes the carried
address on; malformed headers close the connection and are counted, without disturbing others.
"""
import os
import socket
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (DoormanTestCase, free_port, metric_value, port_open, start_nginx,  # noqa: E402
                     wait_until)
from l4_peers import recv_until_eof  # noqa: E402


def manifest(listeners, nginx_port):
    ls = "".join("    - {name: l%d, port: %d, protocol: TCP, proxyProtocol: {send: %s, accept: %s}}\n"
                 % (i, port, send, "true" if accept else "false")
                 for i, (port, send, accept) in enumerate(listeners))
    rs = "".join("    - name: r%d\n      listener: l%d\n      backends:\n"
                 "        - endpoints: [{address: 127.0.0.1, port: %d}]\n" % (i, i, nginx_port)
                 for i in range(len(listeners)))
    return ("apiVersion: doorman.dev/v1alpha1\nkind: LoadBalancer\nmetadata: {name: pp, namespace: default}\n"
            "spec:\n  listeners:\n" + ls + "  routes:\n" + rs)


def crc32c(data):
    """CRC-32C (Castagnoli), bit by bit: the test's own, independent of the dataplane's table."""
    c = 0xFFFFFFFF
    for b in data:
        c ^= b
        for _ in range(8):
            c = (c >> 1) ^ (0x82F63B78 if c & 1 else 0)
    return c ^ 0xFFFFFFFF


def request(port, src=None, preamble=b""):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(5)
    try:
        if src:
            s.bind((src, 0))
        s.connect(("127.0.0.1", port))
        s.sendall(preamble + b"GET / HTTP/1.1\r\nHost: pp.test\r\nConnection: close\r\n\r\n")
        return recv_until_eof(s).decode(errors="replace")
    finally:
        s.close()


class ProxyProtocol(DoormanTestCase):
    def setUp(self):
        super().setUp()
        self.nginx_port = free_port()
        start_nginx(self, http_servers="""
  server {
    listen 127.0.0.1:%d proxy_protocol;
    location / { return 200 "pp=$proxy_protocol_addr:$proxy_protocol_port peer=$remote_addr\\n"; }
  }""" % self.nginx_port)
        wait_until(lambda: port_open(self.nginx_port), what="nginx")
        self.v1, self.v2, self.acc = free_port(), free_port(), free_port()
        self.write_manifest("pp.yaml", manifest(
            [(self.v1, "v1", False), (self.v2, "v2", False), (self.acc, "v2", True)], self.nginx_port))
        self.start_controller()
        self.start_dataplane()
        self.wait_converged()
        for p in (self.v1, self.v2, self.acc):
            wait_until(lambda: port_open(p), what="listener %d" % p)
        self.wait_l4_probes_ended(3)

    def test_send_v1_and_v2_carry_the_true_client_address(self):
        for port in (self.v1, self.v2):
            body = request(port, src="127.0.0.5")
            self.assertIn("200 OK", body)
            self.assertIn("pp=127.0.0.5:", body, port)

    def test_accept_v1_and_v2_from_downstream_and_pass_the_address_on(self):
        body = request(self.acc, preamble=b"PROXY TCP4 203.0.113.7 127.0.0.1 4242 80\r\n")
        self.assertIn("pp=203.0.113.7:4242", body)
        v2 = (b"\r\n\r\n\x00\r\nQUIT\n\x21\x11\x00\x0c" + bytes([198, 51, 100, 9]) + bytes([127, 0, 0, 1]) +
              (5555).to_bytes(2, "big") + (80).to_bytes(2, "big"))
        body = request(self.acc, preamble=v2)
        self.assertIn("pp=198.51.100.9:5555", body)
        # A v2 LOCAL header (a health check from the other balancer) keeps the TCP peer address.
        local = b"\r\n\r\n\x00\r\nQUIT\n\x20\x00\x00\x00"
        body = request(self.acc, src="127.0.0.6", preamble=local)
        self.assertIn("pp=127.0.0.6:", body)

    def test_every_byte_received_counts_the_header_included(self):
        # The header and the request behind it arrive in one write: the bytes read while parsing
        # the header (the request among them) count as received, like the rest.
        def rx():
            return metric_value(self.dataplane_metrics(), "doorman_l4_bytes_total",
                                {"listener": "tcp-%d" % self.acc, "direction": "rx"}) or 0
        preamble = b"PROXY TCP4 203.0.113.7 127.0.0.1 4242 80\r\n"
        sent = len(preamble + b"GET / HTTP/1.1\r\nHost: pp.test\r\nConnection: close\r\n\r\n")
        before = rx()
        self.assertIn("pp=203.0.113.7:4242", request(self.acc, preamble=preamble))
        wait_until(lambda: rx() - before >= sent, what="the received bytes counted")
        self.assertEqual(rx() - before, sent)

    def test_v2_families_of_the_other_transport_keep_the_peer_address(self):
        # UDP4 (0x12) on a TCP listener: a defined family, accepted; its addresses describe a
        # datagram flow, so the TCP peer's address is used (as for AF_UNIX), as HAProxy does.
        v2 = (b"\r\n\r\n\x00\r\nQUIT\n\x21\x12\x00\x0c" + bytes([198, 51, 100, 9]) + bytes([127, 0, 0, 1]) +
              (5555).to_bytes(2, "big") + (80).to_bytes(2, "big"))
        body = request(self.acc, src="127.0.0.7", preamble=v2)
        self.assertIn("pp=127.0.0.7:", body)
        # A TLV that runs past the header's length: malformed, closed and counted.
        before = self.drops()
        bad = (b"\r\n\r\n\x00\r\nQUIT\n\x21\x11\x00\x11" + bytes([198, 51, 100, 9]) + bytes([127, 0, 0, 1]) +
               (5555).to_bytes(2, "big") + (80).to_bytes(2, "big") + b"\x01\x00\x09ab")
        self.assert_closed(bad + b"GET / HTTP/1.1\r\nHost: pp.test\r\n\r\n")
        wait_until(lambda: self.drops() == before + 1, what="the malformed TLV counted")

    def test_a_v2_checksum_from_haproxy_is_verified(self):
        # HAProxy in front sends v2 with a PP2_TYPE_CRC32C TLV (`proxy-v2-options crc32c`): the
        # checksum matches and the true client address is passed on.
        hp_port = free_port()
        cfg = os.path.join(self.tmp, "haproxy.cfg")
        with open(cfg, "w") as f:
            f.write("global\n  maxconn 64\ndefaults\n  mode tcp\n  timeout connect 5s\n"
                    "  timeout client 10s\n  timeout server 10s\n"
                    "listen front\n  bind 127.0.0.1:%d\n"
                    "  server dm 127.0.0.1:%d send-proxy-v2 proxy-v2-options crc32c\n" % (hp_port, self.acc))
        self.spawn("haproxy", ["haproxy", "-f", cfg, "-db"])
        wait_until(lambda: port_open(hp_port), what="haproxy")
        before = self.drops()
        body = request(hp_port, src="127.0.0.8")
        self.assertIn("pp=127.0.0.8:", body)
        # The same kind of header with one address byte changed after the checksum was computed:
        # closed and counted, as HAProxy itself does.
        v2 = (b"\r\n\r\n\x00\r\nQUIT\n\x21\x11\x00\x13" + bytes([198, 51, 100, 9]) + bytes([127, 0, 0, 1]) +
              (5555).to_bytes(2, "big") + (80).to_bytes(2, "big") + b"\x03\x00\x04\x00\x00\x00\x00")
        crc = crc32c(v2)
        good = v2[:-4] + crc.to_bytes(4, "big")
        self.assertIn("pp=198.51.100.9:5555", request(self.acc, preamble=good))
        bad = good[:16] + bytes([198, 51, 100, 10]) + good[20:]
        self.assert_closed(bad + b"GET / HTTP/1.1\r\nHost: pp.test\r\n\r\n")
        wait_until(lambda: self.drops() == before + 1, what="the bad checksum counted")

    def assert_closed(self, data):
        """Sends `data` to the accepting listener: nothing comes back before the close."""
        s = socket.create_connection(("127.0.0.1", self.acc), timeout=5)
        try:
            s.sendall(data)
            try:
                self.assertEqual(recv_until_eof(s), b"", data)
            except ConnectionResetError:
                pass
        finally:
            s.close()

    def drops(self):
        return metric_value(self.dataplane_metrics(), "doorman_l4_drops_total", {"reason": "proxy_protocol"}) or 0

    def test_malformed_header_is_closed_and_counted(self):
        # The readiness probes (connect + close, no header) are drops too; setUp waited for them
        # to end, so count from here.
        before = self.drops()
        for bad in (b"GET / HTTP/1.1\r\n\r\n", b"PROXY TCP4 1.2.3.4 5.6.7.8 99999 80\r\n",
                    b"PROXY " + b"A" * 200, b"\r\n\r\n\x00\r\nQUIT\n\x21\x11\xff\xff"):
            self.assert_closed(bad)
        wait_until(lambda: self.drops() == before + 4, what="proxy_protocol drops counted")
        # Unrelated traffic is undisturbed.
        self.assertIn("pp=127.0.0.1:", request(self.v2))


if __name__ == "__main__":
    unittest.main(verbosity=2)
