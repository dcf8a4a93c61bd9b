#!/usr/bin/env python3
"""PostgreSQL through the L4 forwarder: a private cluster (initdb in a temp dir, run as the
`postgres` user when the test runs as root), psql and pgbench through a Doorman TCP listener.
Bounded: small scale, fixed transaction count, every wait has a deadline.
"""
import os
import shutil
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import DoormanTestCase, free_port, port_open, wait_until  # noqa: E402

PGBIN = "/usr/lib/postgresql/15/bin"


def as_pg(argv):
    """Runs as `postgres` when we are root (initdb/postgres refuse to run as root)."""
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--"] + argv
    return argv


@unittest.skipUnless(os.path.exists(os.path.join(PGBIN, "initdb")), "PostgreSQL 15 not installed")
class Postgres(DoormanTestCase):
    def setUp(self):
        super().setUp()
        self.pgdata = os.path.join(self.tmp, "pg")
        os.makedirs(self.pgdata)
        if os.geteuid() == 0:
            os.chmod(self.tmp, 0o755)
            shutil.chown(self.pgdata, "postgres", "postgres")
        subprocess.run(as_pg([os.path.join(PGBIN, "initdb"), "-D", self.pgdata, "-A", "trust", "-U", "postgres",
                              "--no-sync"]), check=True, capture_output=True, timeout=120)
        self.pg_port = free_port()
        self.spawn("postgres", as_pg([os.path.join(PGBIN, "postgres"), "-D", self.pgdata, "-p", str(self.pg_port),
                                      "-k", self.pgdata, "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"]))
        wait_until(lambda: subprocess.run([os.path.join(PGBIN, "pg_isready"), "-h", "127.0.0.1", "-p",
                                           str(self.pg_port)], capture_output=True, timeout=5).returncode == 0,
                   timeout=60, what="postgres ready")
        self.port = free_port()
        self.write_manifest("pg.yaml", f"""\
apiVersion: doorman.dev/v1alpha1
kind: LoadBalancer
metadata: {{name: pg, namespace: default}}
spec:
  listeners:
    - {{name: pg, port: {self.port}, protocol: TCP}}
  routes:
    - name: pg
      listener: pg
      backends: [{{endpoints: [{{address: 127.0.0.1, port: {self.pg_port}}}]}}]
""")
        self.start_controller()
        self.start_dataplane()
        self.wait_converged()
        wait_until(lambda: port_open(self.port), what="pg listener")

    def run_pg(self, argv, timeout=120):
        out = subprocess.run(argv + ["-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres"],
                             capture_output=True, text=True, timeout=timeout)
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        return out.stdout

    def test_psql_and_pgbench_through_doorman(self):
        self.assertIn("42", self.run_pg([os.path.join(PGBIN, "psql"), "-X", "-A", "-t", "-c", "SELECT 40 + 2",
                                         "postgres"]))
        self.run_pg([os.path.join(PGBIN, "pgbench"), "-i", "-s", "1", "-q", "postgres"])
        out = self.run_pg([os.path.join(PGBIN, "pgbench"), "-c", "4", "-j", "2", "-t", "200", "postgres"])
        self.assertIn("number of failed transactions: 0", out)
        self.assertIn("number of transactions actually processed: 800/800", out)


if __name__ == "__main__":
    unittest.main(verbosity=2)
