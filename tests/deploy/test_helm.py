"""helm/doorman rendered by tools/helm-render (helm's `template` for the subset the chart uses),
checked against deploy/ and applied with the real kubectl to the API test server.

Proven: the default render equals deploy/ object for object (labels aside); two non-default
value sets change exactly what they should; values.schema.json rejects bad values; every render
is accepted by kubectl apply (Deployment/DaemonSet/RBAC/monitoring kinds via stand-in CRDs, and
NetworkPolicy, are stored but not validated by the server: see standin-crds.yaml; the chart's
own checks on NetworkPolicy peers are tested on the render); with mtls.enabled the rendered --tls-* flags,
pointed at a throwaway PKI, start the real binaries and the dataplane connects over mTLS. Not proven: that the real helm binary renders
identically (it cannot be installed here), nor a real cluster's admission of those kinds.
"""
import copy
import os
import subprocess
import sys
import tempfile
import unittest

import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import deploycheck as dc  # noqa: E402
from simkube import BUILD_DIR, ROOT, Sim  # noqa: E402

CHART = os.path.join(ROOT, "helm", "doorman")
HERE = os.path.dirname(os.path.abspath(__file__))
STANDIN = os.path.join(HERE, "standin-crds.yaml")
RENDER = os.path.join(BUILD_DIR, "helm-render")


def build_renderer():
    env = dict(os.environ, GO111MODULE="off", GOPATH="/usr/share/gocode",
               GOCACHE=os.path.join(BUILD_DIR, ".gocache"), GOFLAGS="")
    p = subprocess.run(["go", "build", "-o", RENDER, "./tools/helm-render"], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=240)
    if p.returncode != 0:
        raise AssertionError("go build tools/helm-render failed: " + p.stderr)


def render(*args, check=True):
    p = subprocess.run([RENDER, *args, CHART], capture_output=True, text=True, timeout=60)
    if check and p.returncode != 0:
        raise AssertionError("helm-render failed: " + p.stderr)
    return p


def docs_of(text):
    return [d for d in yaml.safe_load_all(text) if d]


def strip_labels(doc):
    d = copy.deepcopy(doc)
    d["metadata"].pop("labels", None)
    tmpl = d.get("spec", {}).get("template") if isinstance(d.get("spec"), dict) else None
    if tmpl:
        tmpl["metadata"].pop("labels", None)
    return d


def keyed(docs):
    return {(d["kind"], d["metadata"]["name"]): strip_labels(d) for d in docs}


class HelmRenderTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        build_renderer()

    def test_default_equals_deploy(self):
        # deploy/ is the chart without mTLS (plain manifests cannot generate a CA; deploy/mtls/
        # turns it on with Secrets the user makes): test_default_mtls_* cover the chart's default.
        got = keyed(docs_of(render("-name", "doorman", "-namespace", "doorman-system",
                                   "--set", "mtls.enabled=false").stdout))
        want = keyed(dc.deploy_docs(with_monitoring=False))
        want.pop(("Namespace", "doorman-system"))  # helm: --create-namespace, not a template
        self.assertEqual(sorted(got), sorted(want))
        for k in want:
            self.assertEqual(got[k], want[k], "chart and deploy/ differ for %s %s" % k)

    def test_monitoring_equals_deploy(self):
        out = render("-name", "doorman", "-namespace", "doorman-system",
                     "--set", "metrics.serviceMonitor.enabled=true,metrics.prometheusRule.enabled=true").stdout
        got = keyed(docs_of(out))
        for d in dc.deploy_docs():
            if d["kind"] in ("ServiceMonitor", "PrometheusRule"):
                self.assertEqual(got[(d["kind"], d["metadata"]["name"])], strip_labels(d))

    def test_default_properties_and_labels(self):
        docs = docs_of(render("-name", "doorman", "-namespace", "doorman-system").stdout)
        dc.check_controller(self, docs, replicas=2, leader_elect=True)
        dc.check_dataplane(self, docs)
        dc.check_ingressclass(self, docs, "doorman", default=False)
        for d in docs:
            self.assertEqual(d["metadata"]["labels"]["app.kubernetes.io/managed-by"], "Helm")
        self.assertFalse(dc.by_kind(docs, "ServiceMonitor"))

    def test_pod_network_advertises_the_pod_address(self):
        # hostNetwork=false: the listeners are on the pod's address, so that is the one status lists
        # (helper-106: the node's was advertised, where nothing listens). And a priority class.
        docs = docs_of(render("-name", "doorman", "-namespace", "doorman-system", "--set",
                              "dataplane.hostNetwork=false,dataplane.priorityClassName=system-node-critical,"
                              "dataplane.shutdownDelay=1m30s,dataplane.drainTimeout=1.5s,"
                              "dataplane.terminationGracePeriodSeconds=120").stdout)
        ds = dc.one(docs, "DaemonSet")
        spec = ds["spec"]["template"]["spec"]
        self.assertFalse(spec["hostNetwork"])
        self.assertEqual(spec["priorityClassName"], "system-node-critical")
        c = dc.container(ds)
        self.assertIn("--advertise-address=$(POD_IP)", c["args"])
        self.assertIn("--shutdown-delay=1m30s", c["args"])  # Go durations, as the binary takes them
        self.assertEqual(spec["terminationGracePeriodSeconds"], 120)
        env = {e["name"]: e["valueFrom"]["fieldRef"]["fieldPath"] for e in c["env"] if "valueFrom" in e}
        self.assertEqual(env.get("POD_IP"), "status.podIP")
        self.assertNotIn("HOST_IP", env)
        self.assertNotIn("priorityClassName", dc.one(docs_of(render("-name", "doorman").stdout),
                                                     "DaemonSet")["spec"]["template"]["spec"])
        self.assertNotEqual(render("--set", "dataplane.shutdownDelay=5 s", check=False).returncode, 0)

    def test_crds_match(self):
        with open(os.path.join(ROOT, "crds", "doorman.dev_loadbalancers.yaml")) as a, \
                open(os.path.join(CHART, "crds", "doorman.dev_loadbalancers.yaml")) as b:
            self.assertEqual(a.read(), b.read(), "helm/doorman/crds is a copy of crds/: keep them equal")
        out = render("-include-crds").stdout
        self.assertEqual(dc.one(docs_of(out), "CustomResourceDefinition")["metadata"]["name"],
                         "loadbalancers.doorman.dev")

    def test_values_file(self):
        docs = docs_of(render("-name", "edge", "-namespace", "lb", "-f", os.path.join(HERE, "values-edge.yaml")).stdout)
        dep = dc.check_controller(self, docs, replicas=3, leader_elect=True)
        self.assertEqual(dep["metadata"]["name"], "edge-doorman-controller")
        c = dc.container(dep)
        self.assertEqual(c["image"], "registry.example/doorman:0.1.0-rc1")
        self.assertEqual(c["imagePullPolicy"], "Always")
        self.assertIn("--default-lb-class", c["args"])
        self.assertIn("--ingress-class=edge", c["args"])
        self.assertIn("--ingress-default-certificate=lb/wildcard-tls", c["args"])
        self.assertEqual(c["args"][-1], "--log-level=debug")
        self.assertEqual(dep["spec"]["template"]["spec"]["tolerations"][0]["operator"], "Exists")
        ds = dc.check_dataplane(self, docs)
        dsc = dc.container(ds)
        self.assertIn("--workers=4", dsc["args"])
        self.assertIn("--udp-max-flows=65536", dsc["args"])
        self.assertIn("--controller=edge-doorman-controller.lb.svc:18000", dsc["args"])
        self.assertEqual(ds["spec"]["template"]["spec"]["terminationGracePeriodSeconds"], 120)
        self.assertIn("--drain-timeout=110s", dsc["args"])
        self.assertIn("--log-format=text", dsc["args"])
        self.assertIn("--log-format=json", c["args"])  # the controller's own
        self.assertIn("--shutdown-delay=5s", dsc["args"])
        self.assertEqual(ds["spec"]["template"]["spec"]["nodeSelector"], {"doorman.dev/edge": "true"})
        self.assertEqual(dsc["resources"]["limits"]["memory"], "2Gi")
        dc.check_ingressclass(self, docs, "edge", default=True)
        sm = dc.one(docs, "ServiceMonitor")
        self.assertEqual(sm["metadata"]["labels"]["release"], "kube-prometheus")
        self.assertEqual(sm["spec"]["endpoints"][0]["interval"], "30s")
        self.assertEqual(sm["spec"]["namespaceSelector"]["matchNames"], ["lb"])
        dc.one(docs, "PrometheusRule")
        np = dc.one(docs, "NetworkPolicy")
        self.assertEqual(np["metadata"]["namespace"], "lb")
        self.assertEqual(np["spec"]["ingress"][0]["from"], [{"ipBlock": {"cidr": "10.20.0.0/16"}}])
        self.assertEqual(np["spec"]["ingress"][1]["from"][0]["namespaceSelector"]["matchLabels"],
                         {"kubernetes.io/metadata.name": "monitoring"})
        # RBAC rules are the same as deploy/ whatever the values
        deploy = dc.deploy_docs()
        self.assertEqual(dc.normalized_rules(dc.one(docs, "ClusterRole")),
                         dc.normalized_rules(dc.one(deploy, "ClusterRole")))
        self.assertEqual(dc.normalized_rules(dc.one(docs, "Role")), dc.normalized_rules(dc.one(deploy, "Role")))
        self.assertEqual(dc.one(docs, "Role")["metadata"]["namespace"], "lb")

    def test_set_flags(self):
        out = render("-name", "doorman", "-namespace", "doorman-system",
                     "--set", "controller.replicas=1,controller.leaderElection.enabled=false",
                     "--set", "dataplane.hostNetwork=false", "--set", "mtls.secretName=doorman-mtls",
                     "--set", "ingressClass.enabled=false").stdout
        docs = docs_of(out)
        dep = dc.check_controller(self, docs, replicas=1, leader_elect=False)
        self.assertFalse(dc.by_kind(docs, "PodDisruptionBudget"), "one replica: a budget would block node drains")
        self.assertFalse(dc.by_kind(docs, "Role"), "no Lease access without leader election")
        self.assertFalse(dc.by_kind(docs, "IngressClass"))
        self.assertFalse(dc.by_kind(docs, "Secret"), "a named Secret is the user's: none generated")
        ds = dc.one(docs, "DaemonSet")
        pod = ds["spec"]["template"]["spec"]
        self.assertFalse(pod["hostNetwork"])
        self.assertEqual(pod["dnsPolicy"], "ClusterFirst")
        for w in (dep, ds):
            self.assertEqual(dc.tls_args(w), dc.MTLS_ARGS)
            dc.check_mtls_mount(self, w, "doorman-mtls")
        notes = render("--set", "mtls.secretName=doorman-mtls", "-notes").stdout
        self.assertIn("mTLS between controller and dataplanes is on", notes)
        self.assertIn("expect the name doorman-controller.default.svc", notes)
        self.assertIn("Pods wait in ContainerCreating until the Secrets exist", notes)
        self.assertIn("The chart generated both Secrets", render("-notes").stdout)
        self.assertIn("mTLS between controller and dataplanes is OFF",
                      render("--set", "mtls.enabled=false", "-notes").stdout)

    def test_network_policy(self):
        # Off by default; on, it admits the gRPC port from the dataplanes and leaves metrics open.
        self.assertFalse(dc.by_kind(docs_of(render().stdout), "NetworkPolicy"))
        docs = docs_of(render("--set", "networkPolicy.enabled=true,dataplane.hostNetwork=false").stdout)
        np = dc.one(docs, "NetworkPolicy")
        dep = dc.one(docs, "Deployment")
        ds = dc.one(docs, "DaemonSet")
        self.assertEqual(np["spec"]["podSelector"]["matchLabels"], dep["spec"]["selector"]["matchLabels"])
        self.assertEqual(np["spec"]["policyTypes"], ["Ingress"])
        grpc, metrics = np["spec"]["ingress"]
        self.assertEqual(grpc["ports"], [{"port": "grpc", "protocol": "TCP"}])
        self.assertEqual(grpc["from"], [{"podSelector": {"matchLabels": ds["spec"]["selector"]["matchLabels"]}}])
        self.assertEqual(metrics, {"ports": [{"port": "metrics", "protocol": "TCP"}]})  # no from: everyone
        # The named ports exist on the controller's container.
        names = {p["name"] for p in dc.container(dep)["ports"]}
        self.assertLessEqual({"grpc", "metrics"}, names)
        # Host-network dataplanes come from node addresses: a podSelector would lock them out.
        p = render("--set", "networkPolicy.enabled=true", check=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("needs networkPolicy.grpcFrom", p.stderr)
        p = render("--set", "networkPolicy.enabled=true,networkPolicy.grpcFrom=oops", check=False)
        self.assertNotEqual(p.returncode, 0)
        # Peers the API server would refuse are refused at render time (helper-145).
        bad = {"empty peer": "[{}]",
               "ipBlock with a selector": "[{ipBlock: {cidr: 10.0.0.0/16}, podSelector: {}}]",
               "cidr without a prefix": "[{ipBlock: {cidr: 10.0.0.1}}]"}
        with tempfile.TemporaryDirectory() as tmp:
            for what, peers in bad.items():
                for field in ("grpcFrom", "metricsFrom"):
                    with self.subTest(what, field=field):
                        path = os.path.join(tmp, "np.yaml")
                        with open(path, "w") as f:
                            f.write("dataplane: {hostNetwork: false}\nnetworkPolicy: {enabled: true, %s: %s}\n" % (field, peers))
                        p = render("-f", path, check=False)
                        self.assertNotEqual(p.returncode, 0, what)
            path = os.path.join(tmp, "np.yaml")
            with open(path, "w") as f:
                f.write("networkPolicy: {enabled: true, grpcFrom: [{ipBlock: {cidr: 10.0.0.0/16, except: [10.0.1.0/24]}}, "
                        "{ipBlock: {cidr: 'fd00::/64'}}]}\n")
            self.assertEqual(render("-f", path, check=False).returncode, 0)

    def test_watch_namespace_narrows_rbac_to_a_role(self):
        docs = docs_of(render("-name", "doorman", "-namespace", "doorman-system",
                              "--set", "controller.watchNamespace=team-a").stdout)
        c = dc.container(dc.one(docs, "Deployment"))
        self.assertIn("--watch-namespace=team-a", c["args"])
        c = dc.container(dc.one(docs_of(render("--set", "controller.watchNamespace=team-a",
                                               "--set", "controller.ingressDefaultCertificate=team-a/tls").stdout),
                                "Deployment"))
        self.assertIn("--ingress-default-certificate=team-a/tls", c["args"])  # inside: fine
        deploy_rules = dc.normalized_rules(dc.one(dc.deploy_docs(), "ClusterRole"))
        cluster = dc.normalized_rules(dc.one(docs, "ClusterRole"))
        self.assertEqual(cluster, {("networking.k8s.io", "ingressclasses", "list"),
                                   ("networking.k8s.io", "ingressclasses", "watch")})
        roles = {r["metadata"]["name"]: r for r in dc.by_kind(docs, "Role")}
        watch = roles["doorman-controller"]
        self.assertEqual(watch["metadata"]["namespace"], "team-a")
        self.assertEqual(dc.normalized_rules(watch), deploy_rules - cluster)  # everything else, in team-a only
        binding = [b for b in dc.by_kind(docs, "RoleBinding") if b["metadata"]["name"] == "doorman-controller"][0]
        self.assertEqual(binding["metadata"]["namespace"], "team-a")
        self.assertEqual(binding["subjects"], [{"kind": "ServiceAccount", "name": "doorman-controller",
                                                "namespace": "doorman-system"}])
        self.assertEqual(roles["doorman-controller-leader-election"]["metadata"]["namespace"], "doorman-system")
        # IngressClass Warning Events: the API server takes them only in "default".
        events = roles["doorman-controller-cluster-events"]
        self.assertEqual(events["metadata"]["namespace"], "default")
        self.assertEqual(dc.normalized_rules(events), {("", "events", v) for v in ("create", "get", "patch")})
        eb = [b for b in dc.by_kind(docs, "RoleBinding") if b["metadata"]["name"] == "doorman-controller-cluster-events"][0]
        self.assertEqual((eb["metadata"]["namespace"], eb["roleRef"]["name"]), ("default", "doorman-controller-cluster-events"))
        # Watching "default" itself: its Role has Events already.
        docs = docs_of(render("--set", "controller.watchNamespace=default").stdout)
        self.assertNotIn("doorman-controller-cluster-events", {r["metadata"]["name"] for r in dc.by_kind(docs, "Role")})

    def test_mtls_secrets_per_workload_and_server_name(self):
        docs = docs_of(render("--set", "mtls.enabled=true,mtls.controllerSecretName=ctl-tls",
                              "--set", "mtls.dataplaneSecretName=dp-tls,mtls.serverName=controller.example").stdout)
        secret = lambda w: {v["name"]: v for v in w["spec"]["template"]["spec"]["volumes"]}["mtls"]["secret"]  # noqa: E731
        dep, ds = dc.one(docs, "Deployment"), dc.one(docs, "DaemonSet")
        self.assertEqual(secret(dep)["secretName"], "ctl-tls")
        self.assertEqual(secret(ds)["secretName"], "dp-tls")
        self.assertIn("--tls-server-name=controller.example", dc.container(ds)["args"])
        self.assertFalse([a for a in dc.container(dep)["args"] if a.startswith("--tls-server-name")])
        # Off: no flag, no volume, no Secret.
        docs = docs_of(render("--set", "mtls.enabled=false").stdout)
        self.assertFalse(dc.by_kind(docs, "Secret"))
        for w in (dc.one(docs, "Deployment"), dc.one(docs, "DaemonSet")):
            self.assertFalse([a for a in dc.container(w)["args"] if a.startswith("--tls-")])
            self.assertNotIn("mtls", {v["name"] for v in w["spec"]["template"]["spec"].get("volumes", [])})

    def test_default_mtls_generates_a_ca_and_two_certificates(self):
        import base64
        docs = docs_of(render("-name", "doorman", "-namespace", "doorman-system").stdout)
        dep, ds = dc.one(docs, "Deployment"), dc.one(docs, "DaemonSet")
        for w in (dep, ds):
            self.assertEqual(dc.tls_args(w), dc.MTLS_ARGS)
        dc.check_mtls_mount(self, dep, "doorman-controller-mtls")
        dc.check_mtls_mount(self, ds, "doorman-dataplane-mtls")
        secrets = {d["metadata"]["name"]: d for d in dc.by_kind(docs, "Secret")}
        self.assertEqual(sorted(secrets), ["doorman-controller-mtls", "doorman-dataplane-mtls"])
        pems = {}
        for who in ("controller", "dataplane"):
            sec = secrets["doorman-%s-mtls" % who]
            self.assertEqual(sec["type"], "kubernetes.io/tls")
            self.assertEqual(sec["metadata"]["namespace"], "doorman-system")
            pems[who] = {k: base64.b64decode(v) for k, v in sec["data"].items()}
            self.assertEqual(sorted(pems[who]), ["ca.crt", "tls.crt", "tls.key"])
        self.assertEqual(pems["controller"]["ca.crt"], pems["dataplane"]["ca.crt"], "one CA")
        self.assertNotEqual(pems["controller"]["tls.key"], pems["dataplane"]["tls.key"],
                            "a node must not hold the controller's key")
        self.assertNotIn(b"PRIVATE KEY", pems["controller"]["ca.crt"], "the CA key is kept nowhere")
        # The dataplanes dial the controller Service's name; here 127.0.0.1, told that name.
        self.assertNotIn("--tls-server-name", " ".join(dc.container(ds)["args"]))
        dc.check_mtls_args_start_binaries(
            self, BUILD_DIR, dc.tls_args(dep),
            dc.tls_args(ds) + ["--tls-server-name=doorman-controller.doorman-system.svc"], pems=pems)
        # The controller's certificate names that Service and no other: a dataplane expecting
        # another name refuses it (the dataplane's own certificate names no Service at all).
        self.assertIn(b"-----BEGIN CERTIFICATE-----", pems["dataplane"]["tls.crt"])
        with self.assertRaises(AssertionError):
            dc.check_mtls_args_start_binaries(
                self, BUILD_DIR, dc.tls_args(dep),
                dc.tls_args(ds) + ["--tls-server-name=doorman-controller.other.svc"], pems=pems)
        # Another release: its own names and its own CA.
        other = docs_of(render("-name", "edge", "-namespace", "lb").stdout)
        names = sorted(d["metadata"]["name"] for d in dc.by_kind(other, "Secret"))
        self.assertEqual(names, ["edge-doorman-controller-mtls", "edge-doorman-dataplane-mtls"])

    def test_generated_controller_certificate_names_the_server_name_too(self):
        import base64
        docs = docs_of(render("-name", "doorman", "-namespace", "lb", "--set", "mtls.serverName=controller.example").stdout)
        sec = {d["metadata"]["name"]: d for d in dc.by_kind(docs, "Secret")}["doorman-controller-mtls"]
        pem = base64.b64decode(sec["data"]["tls.crt"])
        out = subprocess.run(["openssl", "x509", "-noout", "-ext", "subjectAltName"], input=pem,
                             capture_output=True, timeout=30).stdout.decode()
        for name in ("doorman-controller.lb.svc", "doorman-controller.lb.svc.cluster.local", "controller.example"):
            self.assertIn("DNS:" + name, out)

    def test_mtls_half_named_is_refused(self):
        # One generated side would not trust the other: named Secrets are both or neither.
        for half in ("mtls.controllerSecretName=ctl-tls", "mtls.dataplaneSecretName=dp-tls"):
            p = render("--set", half, check=False)
            self.assertNotEqual(p.returncode, 0, half)
            self.assertIn("name both controllerSecretName and dataplaneSecretName", p.stderr)

    def test_mtls_args_are_accepted_by_the_binaries(self):
        """The rendered --tls-* flags, pointed at real files, start both binaries (names match)."""
        docs = docs_of(render("--set", "mtls.enabled=true,mtls.serverName=localhost").stdout)
        dep, ds = dc.one(docs, "Deployment"), dc.one(docs, "DaemonSet")
        self.assertEqual(dc.tls_args(ds), dc.MTLS_ARGS + ["--tls-server-name=localhost"])
        dc.check_mtls_args_start_binaries(self, BUILD_DIR, dc.tls_args(dep), dc.tls_args(ds))

    def test_schema_rejects(self):
        for args, msg in ((["--set", "controller.replicas=0"], "controller.replicas: 0 is less than the minimum 1"),
                          (["--set", "controller.logFormat=xml"], "is not one of"),
                          (["--set", "dataplane.bogus=1"], 'additional property "bogus" not allowed'),
                          (["--set", "controller.replicas=two"], "got string, want integer"),
                          (["--set", "controller.extraArgs={debug}"], "does not match"),
                          (["--set", "controller.ingressDefaultCertificate=wildcard-tls"], "does not match"),
                          (["--set", "dataplane.drainTimeout=20sec"], "does not match"),
                          (["--set", "controller.watchNamespace=team-a,controller.ingressDefaultCertificate=ops/tls"],
                           "controller.ingressDefaultCertificate ops/tls is outside controller.watchNamespace team-a"),
                          (["--set", "image.repository="], "shorter than 1"),
                          # SIGKILL would cut the drain short: the sum must stay below the grace period.
                          (["--set", "dataplane.drainTimeout=25s"],
                           "dataplane.shutdownDelay (5s) + dataplane.drainTimeout (25s) = 30s, not below "
                           "dataplane.terminationGracePeriodSeconds (30)"),
                          (["--set", "dataplane.shutdownDelay=1m30s,dataplane.drainTimeout=500ms,"
                            "dataplane.terminationGracePeriodSeconds=90"], "= 90.5s, not below"),
                          # Two un-elected controllers would both write status (helper-84).
                          (["--set", "controller.leaderElection.enabled=false"],
                           "controller.replicas is 2 with controller.leaderElection.enabled=false")):
            with self.subTest(args=args):
                p = render(*args, check=False)
                self.assertNotEqual(p.returncode, 0)
                self.assertIn(msg, p.stderr)

    def test_a_second_install_claims_its_own_objects(self):
        # docs/operations.md "Several installs": class, controller value, selector and Lease name
        # (the default render stays deploy/'s: test_default_equals_deploy).
        docs = docs_of(render("-name", "internal", "--set",
                              "ingressClass.name=internal,ingressClass.controller=example.com/internal,"
                              "controller.loadBalancerClass=example.com/internal-lb,"
                              "controller.loadBalancerSelector=doorman.dev/edge=internal,"
                              "controller.leaderElection.id=doorman-internal").stdout)
        args = dc.container(dc.one(docs, "Deployment"))["args"]
        for a in ("--ingress-class=internal", "--controller-class=example.com/internal",
                  "--load-balancer-class=example.com/internal-lb", "--loadbalancer-selector=doorman.dev/edge=internal",
                  "--leader-elect-id=doorman-internal"):
            self.assertIn(a, args)
        self.assertEqual(dc.one(docs, "IngressClass")["spec"]["controller"], "example.com/internal")
        default_args = dc.container(dc.one(docs_of(render().stdout), "Deployment"))["args"]
        self.assertFalse([a for a in default_args if a.startswith(("--controller-class", "--load-balancer-class",
                                                                   "--loadbalancer-selector", "--leader-elect-id"))])
        # An unprefixed class is a valid qualified name (the API's own example is "internal-vip").
        self.assertIn("--load-balancer-class=internal-vip", dc.container(dc.one(docs_of(render(
            "--set", "controller.loadBalancerClass=internal-vip").stdout), "Deployment"))["args"])
        for bad in ("controller.loadBalancerClass=example.com/a/b", "ingressClass.controller=Bad_Domain/x",
                    "controller.loadBalancerClass=example.com/" + "a" * 64, "ingressClass.controller=example.com/a?b",
                    "ingressClass.controller=example.com/" + "a" * 239, "ingressClass.controller=a..b/x",
                    "controller.loadBalancerClass=a.-b/x",
                    "controller.loadBalancerClass=" + ".".join(["a" * 60] * 5) + "/x",  # a 304-character prefix
                    "controller.loadBalancerSelector=edge in (a)", "controller.leaderElection.id=Internal"):
            self.assertNotEqual(render("--set", bad, check=False).returncode, 0, bad)

    def test_drain_that_fits_the_grace_period_renders(self):
        for values, args in (("dataplane.drainTimeout=24.5s", ["--shutdown-delay=5s", "--drain-timeout=24.5s"]),
                             ("dataplane.shutdownDelay=1m,dataplane.drainTimeout=0h58m59.5s,"
                              "dataplane.terminationGracePeriodSeconds=3600",
                              ["--shutdown-delay=1m", "--drain-timeout=0h58m59.5s"])):
            with self.subTest(values=values):
                ds = dc.one(docs_of(render("--set", values).stdout), "DaemonSet")
                for a in args:
                    self.assertIn(a, dc.container(ds)["args"])

    def test_one_unelected_controller_is_replaced_not_surged(self):
        dep = dc.one(docs_of(render("--set", "controller.leaderElection.enabled=false,controller.replicas=1").stdout),
                     "Deployment")
        self.assertEqual(dep["spec"]["strategy"], {"type": "Recreate"})
        self.assertNotIn("--leader-elect", dc.container(dep)["args"])
        dep = dc.one(docs_of(render().stdout), "Deployment")
        self.assertEqual(dep["spec"]["strategy"]["type"], "RollingUpdate")

    def test_set_null_removes_and_types(self):
        docs = docs_of(render("--set", "controller.resources.limits=null,dataplane.workers=8").stdout)
        self.assertNotIn("limits", dc.container(dc.one(docs, "Deployment"))["resources"])
        self.assertIn("--workers=8", dc.container(dc.one(docs, "DaemonSet"))["args"])


class HelmApplyTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not os.access(RENDER, os.X_OK):
            build_renderer()
        cls.sim = Sim()
        cls.sim.kubectl("apply", "-f", STANDIN)
        cls.sim.kubectl("wait", "--for=condition=Established", "crd", "--all", "--timeout=20s")

    @classmethod
    def tearDownClass(cls):
        cls.sim.close()

    def apply(self, ns, *args):
        self.sim.kubectl("create", "namespace", ns)
        out = render("-include-crds", "-namespace", ns, *args).stdout
        res = self.sim.kubectl("apply", "-f", "-", stdin=out).stdout
        for d in docs_of(out):
            self.assertIn(d["metadata"]["name"], res)
        return docs_of(out)

    def test_apply_renders(self):
        self.apply("doorman-system", "-name", "doorman")
        self.apply("lb", "-name", "edge", "-f", os.path.join(HERE, "values-edge.yaml"))
        self.sim.kubectl("wait", "--for=condition=Established", "crd/loadbalancers.doorman.dev", "--timeout=20s")
        got = self.sim.kubectl("get", "deployments", "-A", "-o", "yaml").stdout
        reps = sorted(i["spec"]["replicas"] for i in yaml.safe_load(got)["items"])
        self.assertEqual(reps, [2, 3])
        self.sim.kubectl("get", "servicemonitor/edge-doorman", "prometheusrule/edge-doorman", "-n", "lb")
        self.sim.kubectl("get", "networkpolicy/edge-doorman-controller", "-n", "lb")
        self.sim.kubectl("get", "ingressclass/edge", "ingressclass/doorman")
        # An example LoadBalancer is served by the chart-installed CRD.
        self.sim.kubectl("apply", "-f", os.path.join(ROOT, "examples", "quickstart.yaml"))


if __name__ == "__main__":
    unittest.main(verbosity=2)
