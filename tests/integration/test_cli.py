#!/usr/bin/env python3
"""Both binaries: --help and --version exit 0; bad flags exit non-zero with one clear line."""
import os
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import CONTROLLER, DATAPLANE  # noqa: E402


def run(argv):
    return subprocess.run(argv, capture_output=True, text=True, timeout=10)


class Cli(unittest.TestCase):
    def test_help_and_version(self):
        for binary, flags in ((CONTROLLER, ["--manifests", "--grpc-listen", "--metrics-listen"]),
                              (DATAPLANE, ["--controller", "--node-name", "--bind-address", "--metrics-listen"])):
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
        ]
        for argv in cases:
            r = run(argv)
            self.assertNotEqual(r.returncode, 0, argv)
            lines = [l for l in r.stderr.splitlines() if l.strip()]
            self.assertGreaterEqual(len(lines), 1, argv)
            self.assertLessEqual(len(lines), 2, (argv, r.stderr))

    def test_udp_max_flows_is_validated(self):
        r = run([DATAPLANE, "--help"])
        self.assertIn("--udp-max-flows", r.stdout)
        for value in ("0", "-5", "lots", "16777217", ""):
            r = run([DATAPLANE, "--controller", "127.0.0.1:1", "--udp-max-flows", value])
            self.assertEqual(r.returncode, 2, (value, r.stderr))
            lines = [l for l in r.stderr.splitlines() if l.strip()]
            self.assertEqual(len(lines), 1, (value, r.stderr))
            self.assertIn("udp-max-flows", lines[0])


if __name__ == "__main__":
    unittest.main(verbosity=2)
