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
