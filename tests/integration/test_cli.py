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
            [DATAPLANE, "--controller", "127.0.0.1:1", "--l4-splice", "sometimes"],
            [DATAPLANE, "--controller", "127.0.0.1:1", "--l4-splice", "always", "--l4-splice-pipe-size", "100"],
            [DATAPLANE, "--controller", "127.0.0.1:1", "--l4-splice-pipe-size", "65536"],  # needs --l4-splice
        ]
        for argv in cases:
            r = run(argv)
            self.assertNotEqual(r.returncode, 0, argv)
            lines = [l for l in r.stderr.splitlines() if l.strip()]
            self.assertGreaterEqual(len(lines), 1, argv)
            self.assertLessEqual(len(lines), 2, (argv, r.stderr))


if __name__ == "__main__":
    unittest.main(verbosity=2)
