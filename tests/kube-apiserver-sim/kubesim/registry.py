"""Resource types: the built-in ones, those defined by CRDs, and what the
server publishes about them (discovery documents, OpenAPI v3, Table output).

A ResourceType is one (group, version, resource). Objects are stored by
``storage_key`` (group/resource), so the versions of a CRD share objects (the
apiVersion is rewritten when read, like conversion strategy ``None``), and
``v1 Event`` / ``events.k8s.io/v1 Event`` share one store with field mapping.
"""

import calendar
import copy
import hashlib
import json
import re
import time
from dataclasses import dataclass, field

ALL_VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
SERVER_VERSION = {
    "major": "1", "minor": "32", "gitVersion": "v1.32.0-doorman-sim",
    "gitCommit": "0000000000000000000000000000000000000000", "gitTreeState": "clean",
    "buildDate": "2025-01-01T00:00:00Z", "goVersion": "go1.23.0", "compiler": "gc",
    "platform": "linux/amd64",
}


@dataclass
class ResourceType:
    """One served (group, version, resource)."""
    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool
    singular: str = ""
    short_names: list = field(default_factory=list)
    categories: list = field(default_factory=list)
    status: bool = False          # has a /status subresource
    crd: str = ""                 # name of the defining CRD, "" for built-ins
    schema: dict = None           # openAPIV3Schema (CRDs only)
    printer_columns: list = None  # additionalPrinterColumns (CRDs only)
    storage_key: str = ""

    def __post_init__(self):
        if not self.singular:
            self.singular = self.kind.lower()
        if not self.storage_key:
            self.storage_key = f"{self.group}/{self.plural}"

    @property
    def api_version(self):
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def group_version(self):
        return self.api_version

    @property
    def list_kind(self):
        return self.kind + "List"


def _rt(gv, plural, kind, namespaced, short=(), cats=(), status=False, storage=""):
    group, _, version = gv.rpartition("/")
    return ResourceType(group=group, version=version, plural=plural, kind=kind,
                        namespaced=namespaced, short_names=list(short), categories=list(cats),
                        status=status, storage_key=storage)


BUILTIN_TYPES = [
    _rt("v1", "namespaces", "Namespace", False, ["ns"], status=True),
    _rt("v1", "services", "Service", True, ["svc"], ["all"], status=True),
    _rt("v1", "endpoints", "Endpoints", True, ["ep"]),
    _rt("v1", "nodes", "Node", False, ["no"], status=True),
    _rt("v1", "secrets", "Secret", True),
    _rt("v1", "configmaps", "ConfigMap", True, ["cm"]),
    _rt("v1", "events", "Event", True, ["ev"], storage="core/events"),
    _rt("v1", "serviceaccounts", "ServiceAccount", True, ["sa"]),
    _rt("discovery.k8s.io/v1", "endpointslices", "EndpointSlice", True),
    _rt("networking.k8s.io/v1", "ingresses", "Ingress", True, ["ing"], status=True),
    _rt("networking.k8s.io/v1", "ingressclasses", "IngressClass", False),
    _rt("networking.k8s.io/v1", "networkpolicies", "NetworkPolicy", True, ["netpol"]),  # stored, not enforced
    _rt("coordination.k8s.io/v1", "leases", "Lease", True),
    _rt("events.k8s.io/v1", "events", "Event", True, ["ev"], storage="core/events"),
    _rt("apiextensions.k8s.io/v1", "customresourcedefinitions", "CustomResourceDefinition",
        False, ["crd", "crds"], ["api-extensions"], status=True),
]
BUILTIN_GROUP_ORDER = ["", "discovery.k8s.io", "networking.k8s.io", "coordination.k8s.io",
                       "events.k8s.io", "apiextensions.k8s.io"]


def version_priority(version):
    """Sort key ordering versions like Kubernetes does: GA > beta > alpha, then
    by number (v2 > v1 > v1beta2 > v1beta1 > v1alpha1 > anything else)."""
    m = re.fullmatch(r"v(\d+)(?:(alpha|beta)(\d+))?", version)
    if not m:
        return (0, 0, 0, version)
    major, stage, minor = int(m.group(1)), m.group(2), int(m.group(3) or 0)
    rank = {None: 3, "beta": 2, "alpha": 1}[stage]
    return (rank, major, minor, "")


def types_from_crd(crd):
    """ResourceTypes served for a CRD object (one per served version)."""
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    out = []
    for ver in spec.get("versions") or []:
        if not ver.get("served", True):
            continue
        out.append(ResourceType(
            group=spec.get("group", ""), version=ver.get("name", ""),
            plural=names.get("plural", ""), kind=names.get("kind", ""),
            namespaced=spec.get("scope", "Namespaced") == "Namespaced",
            singular=names.get("singular") or names.get("kind", "").lower(),
            short_names=list(names.get("shortNames") or []),
            categories=list(names.get("categories") or []),
            status="status" in ((ver.get("subresources") or {})),
            crd=crd["metadata"]["name"],
            schema=(ver.get("schema") or {}).get("openAPIV3Schema"),
            printer_columns=ver.get("additionalPrinterColumns") or [],
        ))
    return out


class Registry:
    """The set of served resource types. Callers hold the store lock when
    they change it (CRD writes) or need a consistent view."""

    def __init__(self):
        self.builtin = list(BUILTIN_TYPES)
        self.crd_types = {}   # CRD name -> [ResourceType]

    def all_types(self):
        out = list(self.builtin)
        for name in sorted(self.crd_types):
            out.extend(self.crd_types[name])
        return out

    def set_crd(self, crd):
        self.crd_types[crd["metadata"]["name"]] = types_from_crd(crd)

    def remove_crd(self, name):
        return self.crd_types.pop(name, None)

    def lookup(self, group, version, plural):
        for rt in self.all_types():
            if rt.group == group and rt.version == version and rt.plural == plural:
                return rt
        return None

    def is_served(self, rt):
        return self.lookup(rt.group, rt.version, rt.plural) is rt

    def groups(self):
        """Ordered {group: [versions, preferred first]} of all served groups."""
        found = {}
        for rt in self.all_types():
            found.setdefault(rt.group, [])
            if rt.version not in found[rt.group]:
                found[rt.group].append(rt.version)
        for g in found:
            found[g].sort(key=version_priority, reverse=True)
        ordered = [g for g in BUILTIN_GROUP_ORDER if g in found]
        ordered += sorted(g for g in found if g not in BUILTIN_GROUP_ORDER)
        return {g: found[g] for g in ordered}

    def types_in(self, group, version):
        return [rt for rt in self.all_types() if rt.group == group and rt.version == version]

    # ------------------------------------------------------------ discovery

    def api_group(self, group):
        versions = self.groups().get(group)
        if not versions:
            return None
        return {
            "kind": "APIGroup", "apiVersion": "v1", "name": group,
            "versions": [{"groupVersion": f"{group}/{v}", "version": v} for v in versions],
            "preferredVersion": {"groupVersion": f"{group}/{versions[0]}", "version": versions[0]},
        }

    def api_group_list(self):
        groups = []
        for g in self.groups():
            if g == "":
                continue
            doc = self.api_group(g)
            doc.pop("kind")
            doc.pop("apiVersion")
            groups.append(doc)
        return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}

    def api_resource_list(self, group, version):
        types = self.types_in(group, version)
        if not types:
            return None
        resources = []
        for rt in types:
            entry = {"name": rt.plural, "singularName": rt.singular, "namespaced": rt.namespaced,
                     "kind": rt.kind, "verbs": ALL_VERBS}
            if rt.short_names:
                entry["shortNames"] = rt.short_names
            if rt.categories:
                entry["categories"] = rt.categories
            entry["storageVersionHash"] = hashlib.sha256(
                rt.storage_key.encode()).hexdigest()[:12]
            resources.append(entry)
            if rt.status:
                resources.append({"name": f"{rt.plural}/status", "singularName": "",
                                  "namespaced": rt.namespaced, "kind": rt.kind,
                                  "verbs": ["get", "patch", "update"]})
        return {"kind": "APIResourceList", "apiVersion": "v1",
                "groupVersion": f"{group}/{version}" if group else version,
                "resources": resources}

    # -------------------------------------------------------------- openapi

    def openapi_v3_root(self):
        paths = {}
        for g, versions in self.groups().items():
            for v in versions:
                key = f"api/{v}" if g == "" else f"apis/{g}/{v}"
                digest = hashlib.sha512(json.dumps(self.openapi_v3_gv(g, v),
                                                   sort_keys=True).encode()).hexdigest()[:32]
                paths[key] = {"serverRelativeURL": f"/openapi/v3/{key}?hash={digest.upper()}"}
        return {"paths": paths}

    def openapi_v3_gv(self, group, version):
        """A minimal OpenAPI v3 document for one group/version.

        It lists, per kind, the item and collection paths with their
        operations, each tagged with ``x-kubernetes-group-version-kind`` and
        ``x-kubernetes-action``. PATCH declares the ``fieldValidation`` query
        parameter, so kubectl leaves validation to the server instead of
        wanting OpenAPI v2 schemas; PATCH request bodies do not list
        strategic-merge-patch, so kubectl computes apply patches from its
        compiled-in types (built-ins) or as JSON merge patches (CRs).
        CRD schemas are published as components so ``kubectl explain`` works
        for custom resources.
        """
        types = self.types_in(group, version)
        if not types:
            return None
        prefix = f"/api/{version}" if group == "" else f"/apis/{group}/{version}"
        paths, schemas = {}, {}
        for rt in types:
            gvk = {"group": rt.group, "version": rt.version, "kind": rt.kind}
            ns = "/namespaces/{namespace}" if rt.namespaced else ""
            coll = f"{prefix}{ns}/{rt.plural}"
            item = f"{coll}/{{name}}"

            def op(action, params=(), body=None, _gvk=gvk):
                entry = {"operationId": f"{action}{rt.kind}", "x-kubernetes-action": action,
                         "x-kubernetes-group-version-kind": _gvk,
                         "parameters": [{"name": p, "in": "query", "schema": {"type": "string"}}
                                        for p in params],
                         "responses": {"200": {"description": "OK"}}}
                if body:
                    entry["requestBody"] = {"content": {ct: {"schema": {"type": "object"}}
                                                        for ct in body}}
                return entry

            write = ("dryRun", "fieldManager", "fieldValidation")
            patch_types = ("application/json-patch+json", "application/merge-patch+json",
                           "application/apply-patch+yaml")
            paths[coll] = {"get": op("list", ("labelSelector", "fieldSelector", "limit",
                                              "continue", "watch", "resourceVersion")),
                           "post": op("post", write, ["application/json"]),
                           "delete": op("deletecollection")}
            paths[item] = {"get": op("get"), "put": op("put", write, ["application/json"]),
                           "patch": op("patch", write + ("force",), patch_types),
                           "delete": op("delete")}
            if rt.status:
                paths[item + "/status"] = {
                    "get": op("get"), "put": op("put", write, ["application/json"]),
                    "patch": op("patch", write + ("force",), patch_types)}
            if rt.schema:
                name = ".".join(reversed(rt.group.split("."))) + f".{rt.version}.{rt.kind}"
                comp = copy.deepcopy(rt.schema)
                comp["x-kubernetes-group-version-kind"] = [gvk]
                schemas[name] = comp
        doc = {"openapi": "3.0.0",
               "info": {"title": "Kubernetes", "version": SERVER_VERSION["gitVersion"]},
               "paths": paths}
        if schemas:
            doc["components"] = {"schemas": schemas}
        return doc


# --------------------------------------------------------------- conversion

_EVENT_FIELD_MAP = [  # (events.k8s.io/v1 field, core v1 field)
    ("regarding", "involvedObject"), ("note", "message"),
    ("reportingController", "reportingComponent"),
    ("deprecatedSource", "source"), ("deprecatedFirstTimestamp", "firstTimestamp"),
    ("deprecatedLastTimestamp", "lastTimestamp"), ("deprecatedCount", "count"),
]


def to_storage(rt, obj):
    """Convert an object written through ``rt`` to its stored form."""
    if rt.storage_key == "core/events" and rt.group == "events.k8s.io":
        obj = dict(obj)
        for new, old in _EVENT_FIELD_MAP:
            if new in obj:
                obj[old] = obj.pop(new)
        obj["apiVersion"] = "v1"
    return obj


def present(rt, obj):
    """The stored object as a client of ``rt`` sees it (apiVersion/kind of
    the requested version, Event field mapping)."""
    obj = dict(obj)
    if rt.storage_key == "core/events" and rt.group == "events.k8s.io":
        for new, old in _EVENT_FIELD_MAP:
            if old in obj:
                obj[new] = obj.pop(old)
    obj["apiVersion"] = rt.api_version
    obj["kind"] = rt.kind
    return obj


# -------------------------------------------------------------------- tables

def human_age(timestamp, now=None):
    """Kubernetes' HumanDuration of the time since an RFC 3339 timestamp."""
    if not timestamp:
        return "<unknown>"
    try:
        whole = re.sub(r"\.\d+", "", timestamp)        # MicroTime has fractional seconds
        then = calendar.timegm(time.strptime(whole, "%Y-%m-%dT%H:%M:%SZ"))
    except (ValueError, TypeError):
        return "<unknown>"
    secs = int((now or time.time()) - then)
    if secs < -1:
        return "<invalid>"
    secs = max(secs, 0)
    if secs < 120:
        return f"{secs}s"
    mins = secs // 60
    if mins < 10:
        return f"{mins}m{secs % 60}s" if secs % 60 else f"{mins}m"
    if mins < 180:
        return f"{mins}m"
    hours = mins // 60
    if hours < 8:
        return f"{hours}h{mins % 60}m" if mins % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    days = hours // 24
    if days < 8:
        return f"{days}d{hours % 24}h" if hours % 24 else f"{days}d"
    if days < 365 * 2:
        return f"{days}d"
    return f"{days // 365}y"


def _get(obj, *path, default=None):
    cur = obj
    for p in path:
        if not isinstance(cur, dict):
            return default
        cur = cur.get(p)
    return default if cur is None else cur


def _svc_ports(o):
    parts = []
    for p in _get(o, "spec", "ports", default=[]):
        s = f"{p.get('port')}"
        if p.get("nodePort"):
            s += f":{p['nodePort']}"
        parts.append(f"{s}/{p.get('protocol', 'TCP')}")
    return ",".join(parts) or "<none>"


def _lb_ips(o):
    ips = [i.get("ip") or i.get("hostname") for i in
           _get(o, "status", "loadBalancer", "ingress", default=[])]
    return ",".join(i for i in ips if i)


def _svc_external(o):
    t = _get(o, "spec", "type", default="ClusterIP")
    if t == "LoadBalancer":
        return _lb_ips(o) or "<pending>"
    return ",".join(_get(o, "spec", "externalIPs", default=[])) or "<none>"


def _node_status(o):
    for c in _get(o, "status", "conditions", default=[]):
        if c.get("type") == "Ready":
            return "Ready" if c.get("status") == "True" else "NotReady"
    return "Unknown"


def _ing_hosts(o):
    hosts = [r.get("host") for r in _get(o, "spec", "rules", default=[]) if r.get("host")]
    return ",".join(hosts) or "*"


def _age(o):
    return human_age(_get(o, "metadata", "creationTimestamp"))


_COL = {"name": "Name", "type": "string", "format": "name",
        "description": "Name must be unique within a namespace.", "priority": 0}
_AGE = ("Age", "string", lambda o: _age(o))

BUILTIN_COLUMNS = {  # storage key -> [(header, type, fn)]
    "/services": [("Type", "string", lambda o: _get(o, "spec", "type", default="ClusterIP")),
                  ("Cluster-IP", "string", lambda o: _get(o, "spec", "clusterIP", default="<none>")),
                  ("External-IP", "string", _svc_external),
                  ("Port(s)", "string", _svc_ports), _AGE],
    "networking.k8s.io/ingresses": [
        ("Class", "string", lambda o: _get(o, "spec", "ingressClassName", default="<none>")),
        ("Hosts", "string", _ing_hosts), ("Address", "string", _lb_ips),
        ("Ports", "string", lambda o: "80, 443" if _get(o, "spec", "tls") else "80"), _AGE],
    "networking.k8s.io/ingressclasses": [
        ("Controller", "string", lambda o: _get(o, "spec", "controller", default="")),
        ("Parameters", "string", lambda o: "<none>"), _AGE],
    "/nodes": [("Status", "string", _node_status), ("Roles", "string", lambda o: "<none>"),
               _AGE, ("Version", "string",
                      lambda o: _get(o, "status", "nodeInfo", "kubeletVersion", default=""))],
    "/namespaces": [("Status", "string", lambda o: _get(o, "status", "phase", default="Active")),
                    _AGE],
    "/secrets": [("Type", "string", lambda o: o.get("type", "Opaque")),
                 ("Data", "integer", lambda o: len(o.get("data") or {})), _AGE],
    "/configmaps": [("Data", "integer",
                     lambda o: len(o.get("data") or {}) + len(o.get("binaryData") or {})), _AGE],
    "discovery.k8s.io/endpointslices": [
        ("AddressType", "string", lambda o: o.get("addressType", "")),
        ("Ports", "string", lambda o: ",".join(str(p.get("port")) for p in o.get("ports") or [])
         or "<unset>"),
        ("Endpoints", "string", lambda o: ",".join(
            a for e in o.get("endpoints") or [] for a in e.get("addresses") or []) or "<unset>"),
        _AGE],
    "coordination.k8s.io/leases": [
        ("Holder", "string", lambda o: _get(o, "spec", "holderIdentity", default="")), _AGE],
    "apiextensions.k8s.io/customresourcedefinitions": [
        ("Created At", "date", lambda o: _get(o, "metadata", "creationTimestamp", default=""))],
    "core/events": [("Last Seen", "string", lambda o: human_age(
        o.get("lastTimestamp") or o.get("eventTime") or _get(o, "metadata", "creationTimestamp"))),
        ("Type", "string", lambda o: o.get("type", "")),
        ("Reason", "string", lambda o: o.get("reason", "")),
        ("Object", "string", lambda o: (_get(o, "involvedObject", "kind", default="").lower()
                                        + "/" + _get(o, "involvedObject", "name", default=""))),
        ("Message", "string", lambda o: o.get("message", ""))],
}


def jsonpath_values(obj, expr):
    """Evaluate the simple JSONPath forms used by additionalPrinterColumns:
    ``.a.b``, ``.a[0].b``, ``.a[*].b`` and ``.a[?(@.k=="v")].b``."""
    tokens = re.findall(r'\.([A-Za-z0-9_\-]+)|\[(\*|\d+|\?\(@\.[^)]*\))\]', expr.strip())
    cur = [obj]
    for name, index in tokens:
        nxt = []
        for c in cur:
            if name:
                if isinstance(c, dict) and c.get(name) is not None:
                    nxt.append(c[name])
            elif index == "*":
                if isinstance(c, list):
                    nxt.extend(c)
            elif index.isdigit():
                if isinstance(c, list) and int(index) < len(c):
                    nxt.append(c[int(index)])
            else:
                m = re.fullmatch(r'\?\(@\.([A-Za-z0-9_.\-]+)\s*==\s*["\']?([^"\']*)["\']?\)', index)
                if m and isinstance(c, list):
                    for el in c:
                        if str(_get(el, *m.group(1).split("."), default="")) == m.group(2):
                            nxt.append(el)
        cur = nxt
    return cur


def table_columns(rt):
    """[(column definition, cell function)] for a resource type."""
    cols = [(dict(_COL), lambda o: _get(o, "metadata", "name", default=""))]
    if rt.storage_key == "core/events":         # kubectl's event table has no NAME column
        cols = []
    if rt.crd:
        printer = rt.printer_columns or [{"name": "Age", "type": "date",
                                          "jsonPath": ".metadata.creationTimestamp"}]
        for pc in printer:
            ctype = pc.get("type", "string")
            path = pc.get("jsonPath", "")

            def cell(o, _path=path, _type=ctype):
                vals = jsonpath_values(o, _path)
                if not vals:
                    return None
                if _type == "date":
                    return human_age(vals[0])
                # As the real API server's table converter: the first value only ("we can assume
                # to have only one result"), whatever [*] matched (helper-132).
                v = vals[0]
                if _type in ("integer", "number", "boolean"):
                    return v
                return v if isinstance(v, str) else json.dumps(v)
            cols.append(({"name": pc.get("name", ""), "type": ctype,
                          "format": pc.get("format", ""),
                          "description": pc.get("description", ""),
                          "priority": pc.get("priority", 0)}, cell))
        return cols
    for header, ctype, fn in BUILTIN_COLUMNS.get(rt.storage_key, [_AGE]):
        if ctype == "date":
            def fn2(o, _fn=fn):
                return human_age(_fn(o))
            cols.append(({"name": header, "type": "string", "format": "", "description": "",
                          "priority": 0}, fn2))
        else:
            cols.append(({"name": header, "type": ctype, "format": "", "description": "",
                          "priority": 0}, fn))
    return cols


def to_table(rt, objs, list_meta, include_object="Metadata"):
    """A ``meta.k8s.io/v1 Table`` of the (presented) objects."""
    cols = table_columns(rt)
    rows = []
    for o in objs:
        row = {"cells": [fn(o) for _, fn in cols]}
        if include_object == "Object":
            row["object"] = o
        elif include_object != "None":
            row["object"] = {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                             "metadata": o.get("metadata", {})}
        rows.append(row)
    return {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": list_meta,
            "columnDefinitions": [c for c, _ in cols], "rows": rows}
