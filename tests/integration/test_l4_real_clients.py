#!/usr/bin/env python3
"""Real clients through the L4 forwarder: redis-benchmark against redis-server (0 errors), and a
long-lived redis connection that survives 100 snapshot updates (each update waited for).
"""
import os
import socket
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import DoormanTestCase, free_port, port_open, redis_cmd, wait_until  # noqa: E402


def manifest(port, redis, idle_s=350, extra_port=None):
    extra = ""
    if extra_port:
        extra = "    - {name: spare, port: %d, protocol: TCP}\n" % extra_port
    return f"""\
apiVersion: doorman.dev/v1alpha1
kind: LoadBalancer
metadata: {{name: cache, namespace: default}}
spec:
  listeners:
    - {{name: redis, port: {port}, protocol: TCP, idleTimeout: {idle_s}s}}
{extra}  routes:
    - name: r
      listener: redis
      policy: {{scheduler: least-connections}}
      backends:
        - endpoints: [{{address: 127.0.0.1, port: {redis}}}]
"""


class RealClients(DoormanTestCase):
    def setUp(self):
        super().setUp()
        self.redis = self.start_redis()
        self.port = free_port()
        self.write_manifest("cache.yaml", manifest(self.port, self.redis))
        self.start_controller()
        self.start_dataplane()
        self.version = self.wait_converged()
        wait_until(lambda: port_open(self.port), what="redis listener")

    def test_redis_benchmark_zero_errors(self):
        out = subprocess.run(["redis-benchmark", "-h", "127.0.0.1", "-p", str(self.port), "-n", "20000",
                              "-c", "20", "-t", "set,get,incr,lpush", "-P", "4", "--csv"],
                             capture_output=True, text=True, timeout=120)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertNotIn("rror", out.stdout + out.stderr)
        tests = [line.split(",")[0].strip('"') for line in out.stdout.splitlines()[1:] if line]
        self.assertEqual(sorted(tests), ["GET", "INCR", "LPUSH", "SET"], out.stdout)
        # Every INCR went through: 20000 on the shared counter key.
        s = socket.create_connection(("127.0.0.1", self.redis), timeout=5)
        self.assertEqual(redis_cmd(s, "GET", "counter:__rand_int__").split()[-1], "20000")
        s.close()

    def test_long_lived_connection_survives_100_snapshot_updates(self):
        s = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        self.assertEqual(redis_cmd(s, "SET", "k", "0"), "+OK")
        spare = free_port()
        for i in range(1, 101):
            # Alternate real changes: the listener's idle timeout and a spare listener coming and going.
            self.write_manifest("cache.yaml", manifest(self.port, self.redis, idle_s=350 + i,
                                                       extra_port=spare if i % 2 else None))
            self.version = self.wait_version_change(self.version)
            self.assertEqual(redis_cmd(s, "INCR", "k"), ":%d" % i)
        s.close()


if __name__ == "__main__":
    unittest.main(verbosity=2)
