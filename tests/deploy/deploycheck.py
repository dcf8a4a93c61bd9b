"""Shared checks for the plain manifests (deploy/) and the Helm chart's rendered output."""
import glob
import os

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))


def load_docs(paths):
    out = []
    for p in paths:
        with open(p) as f:
            out += [d for d in yaml.safe_load_all(f) if d]
    return out


def deploy_docs(with_monitoring=True):
    paths = sorted(glob.glob(os.path.join(ROOT, "deploy", "*.yaml")))
    if with_monitoring:
        paths += sorted(glob.glob(os.path.join(ROOT, "deploy", "monitoring", "*.yaml")))
    return load_docs(paths)


def by_kind(docs, kind, name=None):
    found = [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    return found


def one(docs, kind, name=None):
    found = by_kind(docs, kind, name)
    assert len(found) == 1, "want exactly one %s %s, got %d" % (kind, name, len(found))
    return found[0]


def normalized_rules(role):
    """Rules as a set of (apiGroup, resource, verb)."""
    out = set()
    for r in role.get("rules", []):
        for g in r.get("apiGroups", []):
            for res in r.get("resources", []):
                for v in r.get("verbs", []):
                    out.add((g, res, v))
    return out


def container(workload, name=None):
    cs = workload["spec"]["template"]["spec"]["containers"]
    return cs[0] if name is None else next(c for c in cs if c["name"] == name)


def check_controller(tc, docs, replicas=2, leader_elect=True):
    d = one(docs, "Deployment")
    tc.assertEqual(d["spec"]["replicas"], replicas)
    pod = d["spec"]["template"]["spec"]
    c = container(d)
    tc.assertEqual("--leader-elect" in c["args"], leader_elect)
    tc.assertTrue(pod["securityContext"]["runAsNonRoot"])
    tc.assertEqual(pod["securityContext"]["seccompProfile"]["type"], "RuntimeDefault")
    sc = c["securityContext"]
    tc.assertTrue(sc["readOnlyRootFilesystem"])
    tc.assertFalse(sc["allowPrivilegeEscalation"])
    tc.assertEqual(sc["capabilities"]["drop"], ["ALL"])
    tc.assertNotIn("add", sc["capabilities"])
    tc.assertEqual(c["livenessProbe"]["httpGet"]["path"], "/healthz")
    tc.assertEqual(c["readinessProbe"]["httpGet"]["path"], "/readyz")
    metrics_port = next(p for p in c["ports"] if p["name"] == "metrics")
    tc.assertEqual(c["livenessProbe"]["httpGet"]["port"], "metrics")
    tc.assertIn("--metrics-listen=0.0.0.0:%d" % metrics_port["containerPort"], c["args"])
    tc.assertIn("requests", c["resources"])
    spread = pod["topologySpreadConstraints"][0]
    tc.assertEqual(spread["topologyKey"], "kubernetes.io/hostname")
    tc.assertEqual(spread["labelSelector"]["matchLabels"], d["spec"]["selector"]["matchLabels"])
    if replicas > 1:
        pdb = one(docs, "PodDisruptionBudget")
        tc.assertEqual(pdb["spec"]["maxUnavailable"], 1)
        tc.assertEqual(pdb["spec"]["selector"]["matchLabels"], d["spec"]["selector"]["matchLabels"])
        tc.assertEqual(pdb["metadata"]["namespace"], d["metadata"]["namespace"])
    return d


def check_dataplane(tc, docs):
    ds = one(docs, "DaemonSet")
    pod = ds["spec"]["template"]["spec"]
    c = container(ds)
    tc.assertEqual(ds["spec"]["updateStrategy"]["rollingUpdate"]["maxUnavailable"], 1)
    tc.assertGreaterEqual(pod["terminationGracePeriodSeconds"], 10)
    tc.assertTrue(pod["securityContext"]["runAsNonRoot"])
    tc.assertEqual(pod["securityContext"]["seccompProfile"]["type"], "RuntimeDefault")
    tc.assertFalse(pod.get("automountServiceAccountToken", True))
    sc = c["securityContext"]
    tc.assertEqual(sc["capabilities"]["drop"], ["ALL"])
    tc.assertTrue(set(sc["capabilities"].get("add", [])) <= {"NET_BIND_SERVICE", "NET_ADMIN"})
    tc.assertIn("NET_BIND_SERVICE", sc["capabilities"]["add"])
    tc.assertTrue(sc["readOnlyRootFilesystem"])
    tc.assertEqual(c["livenessProbe"]["httpGet"]["path"], "/healthz")
    tc.assertEqual(c["readinessProbe"]["httpGet"]["path"], "/readyz")
    tc.assertTrue(any(a.startswith("--controller=") for a in c["args"]))
    return ds


def check_ingressclass(tc, docs, name="doorman", default=False):
    ic = one(docs, "IngressClass")
    tc.assertEqual(ic["metadata"]["name"], name)
    tc.assertEqual(ic["spec"]["controller"], "doorman.dev/ingress-controller")
    tc.assertEqual(ic["metadata"].get("annotations", {}).get("ingressclass.kubernetes.io/is-default-class"),
                   "true" if default else "false")


# --- mTLS wiring: the --tls-* flags a manifest passes must be the ones the binaries accept -------
MTLS_DIR = "/etc/doorman/tls"
MTLS_ARGS = ["--tls-cert=%s/tls.crt" % MTLS_DIR, "--tls-key=%s/tls.key" % MTLS_DIR, "--tls-ca=%s/ca.crt" % MTLS_DIR]


def tls_args(workload):
    return [a for a in container(workload)["args"] if a.startswith("--tls-")]


def check_mtls_mount(tc, workload, secret_name):
    """The Secret is mounted read-only at MTLS_DIR as a whole directory (a subPath mount would
    never see a renewed Secret)."""
    spec = workload["spec"]["template"]["spec"]
    vols = {v["name"]: v for v in spec.get("volumes", [])}
    mounts = [m for m in container(workload).get("volumeMounts", []) if m["mountPath"] == MTLS_DIR]
    tc.assertEqual(len(mounts), 1, mounts)
    tc.assertTrue(mounts[0].get("readOnly"))
    tc.assertNotIn("subPath", mounts[0])
    tc.assertEqual(vols[mounts[0]["name"]]["secret"]["secretName"], secret_name)


def check_mtls_args_start_binaries(tc, build_dir, controller_tls, dataplane_tls, pems=None):
    """Runs the real binaries on 127.0.0.1 with the given --tls-* args (MTLS_DIR pointed at a
    throwaway PKI): the controller serves mTLS and the dataplane connects through it. `pems`:
    {"controller": {"tls.crt": bytes, ...}, "dataplane": {...}} to use instead (each binary gets
    its own directory then)."""
    import shutil
    import socket
    import subprocess
    import tempfile
    import time

    tmp = tempfile.mkdtemp(prefix="doorman-deploy-mtls-")
    tc.addCleanup(shutil.rmtree, tmp, True)

    def openssl(*a):
        subprocess.run(["openssl", *a], cwd=tmp, check=True, capture_output=True, timeout=30)

    dirs = {"controller": tmp, "dataplane": tmp}
    if pems is None:
        ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1"]
        openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt", "-subj", "/CN=doorman-ca")
        openssl("req", "-x509", *ec, "-keyout", "tls.key", "-out", "tls.crt", "-subj", "/CN=doorman",
                "-CA", "ca.crt", "-CAkey", "ca.key", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
                "-addext", "extendedKeyUsage=serverAuth,clientAuth")
    else:
        for who, files in pems.items():
            dirs[who] = os.path.join(tmp, who)
            os.makedirs(dirs[who])
            for name, data in files.items():
                with open(os.path.join(dirs[who], name), "wb") as f:
                    f.write(data)
    os.makedirs(os.path.join(tmp, "manifests"))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        grpc_port = s.getsockname()[1]
    local = lambda who, args: [a.replace(MTLS_DIR, dirs[who]) for a in args]  # noqa: E731
    runs = (("controller", [os.path.join(build_dir, "controller", "doorman-controller"),
                            "--manifests", os.path.join(tmp, "manifests"),
                            "--grpc-listen", "127.0.0.1:%d" % grpc_port, "--metrics-listen", "127.0.0.1:0"]
             + local("controller", controller_tls), "grpc_tls=mtls"),
            ("dataplane", [os.path.join(build_dir, "dataplane", "doorman-dataplane"),
                           "--controller", "127.0.0.1:%d" % grpc_port, "--bind-address", "127.0.0.1",
                           "--metrics-listen", "127.0.0.1:0"] + local("dataplane", dataplane_tls),
             "connected to controller controller=127.0.0.1:%d tls=mtls" % grpc_port))
    procs = []
    try:
        for name, argv, started in runs:
            log = os.path.join(tmp, name + ".log")
            with open(log, "wb") as out:
                procs.append(subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT))
            deadline = time.monotonic() + 15
            while True:
                with open(log, errors="replace") as f:
                    text = f.read()
                if started in text:
                    break
                if procs[-1].poll() is not None or time.monotonic() > deadline:
                    tc.fail("%s did not log %r (exit %s):\n%s" % (name, started, procs[-1].poll(), text))
                time.sleep(0.05)
    finally:
        for p in procs:
            p.terminate()
            p.wait(timeout=10)
