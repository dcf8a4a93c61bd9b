"""Kubernetes object semantics on top of the Store: create, get, list (with
selectors, pagination and resourceVersion rules), update (optimistic
concurrency), patch (four patch types), delete (finalizers, cascades), status
subresource rules, generation, per-kind defaults, CRD registration, and the
event filtering that watches need.

Every public method takes the store lock for its whole read-modify-write, so
operations are linearizable, as they are against etcd.
"""

import base64
import binascii
import copy
import ipaddress
import json
import re
import secrets as pysecrets
import time
import uuid

from . import errors as E
from . import labels as L
from . import patch as P
from .registry import BUILTIN_GROUP_ORDER, present, to_storage
from .schema import apply_schema

# Kinds whose metadata.generation the real apiserver maintains (spec changes).
GENERATION_KEYS = {"networking.k8s.io/ingresses", "networking.k8s.io/ingressclasses",
                   "discovery.k8s.io/endpointslices",
                   "apiextensions.k8s.io/customresourcedefinitions"}
DEFAULT_NAMESPACES = ["default", "kube-system", "kube-public", "kube-node-lease"]

_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")


def now_rfc3339():
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _strip_meta_status(obj):
    return {k: v for k, v in obj.items() if k not in ("metadata", "status")}


class Api:
    """Object semantics. ``store`` and ``registry`` are shared with the HTTP
    layer; everything here runs under ``store.lock``."""

    def __init__(self, store, registry):
        self.store = store
        self.registry = registry
        self._next_ip = 10              # 10.96.0.10, .11, ...
        self._next_node_port = 30000
        with store.lock:
            ns_rt = self.registry.lookup("", "v1", "namespaces")
            for ns in DEFAULT_NAMESPACES:
                self.create(ns_rt, "", {"apiVersion": "v1", "kind": "Namespace",
                                        "metadata": {"name": ns}}, {})

    # ------------------------------------------------------------ helpers

    def _uses_generation(self, rt):
        return bool(rt.crd) or rt.storage_key in GENERATION_KEYS

    def _not_found(self, rt, name):
        return E.not_found(rt.plural, rt.group, name)

    @staticmethod
    def _dry_run(params):
        return "All" in params.get("dryRun", [])

    def _decode(self, rt, body):
        """Check a request body is an object of this resource type."""
        if not isinstance(body, dict):
            raise E.bad_request("the request body must be a JSON object")
        obj = copy.deepcopy(body)
        av, kind = obj.get("apiVersion"), obj.get("kind")
        if kind and kind != rt.kind:
            raise E.bad_request(f"the kind in the data ({kind}) does not match the expected "
                                f"kind ({rt.kind})")
        if av and av != rt.api_version:
            raise E.bad_request(f"the API version in the data ({av}) does not match the "
                                f"expected API version ({rt.api_version})")
        obj["apiVersion"], obj["kind"] = rt.api_version, rt.kind
        if not isinstance(obj.get("metadata") or {}, dict):
            raise E.bad_request("metadata must be an object")
        obj["metadata"] = dict(obj.get("metadata") or {})
        return obj

    def _check_namespace(self, rt, ns, meta):
        if not rt.namespaced:
            meta.pop("namespace", None)
            return
        if meta.get("namespace") and meta["namespace"] != ns:
            raise E.bad_request("the namespace of the provided object does not match the "
                                "namespace sent on the request")
        meta["namespace"] = ns
        if not self.store.get("/namespaces", "", ns):
            raise E.not_found("namespaces", "", ns)

    def _validate_meta(self, rt, obj):
        meta = obj["metadata"]
        causes = []
        name = meta.get("name", "")
        label_style = rt.storage_key in ("/namespaces", "/services")
        pattern, limit = (_DNS_LABEL, 63) if label_style else (_DNS_SUBDOMAIN, 253)
        if rt.storage_key != "core/events" and (not pattern.fullmatch(name) or len(name) > limit):
            what = "RFC 1123 label" if label_style else "lowercase RFC 1123 subdomain"
            causes.append(("metadata.name", "FieldValueInvalid",
                           f'Invalid value: "{name}": a {what} must consist of lower case '
                           f"alphanumeric characters, '-' or '.', and must start and end with "
                           f"an alphanumeric character"))
        for key, value in (meta.get("labels") or {}).items():
            if not isinstance(value, str) or len(value) > 63 or not _LABEL_VALUE.fullmatch(value):
                causes.append(("metadata.labels", "FieldValueInvalid",
                               f'Invalid value: "{value}": a valid label must be an empty string '
                               f"or consist of alphanumeric characters, '-', '_' or '.'"))
        for key, value in (meta.get("annotations") or {}).items():
            if not isinstance(value, str):
                causes.append(("metadata.annotations", "FieldValueInvalid",
                               f"Invalid value: annotation {key} must be a string"))
        return causes

    # ------------------------------------------------------ kind specifics

    def _alloc_ip(self):
        ip = str(ipaddress.ip_address("10.96.0.0") + self._next_ip)
        self._next_ip += 1
        return ip

    def _alloc_node_port(self):
        port = self._next_node_port
        self._next_node_port += 1
        return port

    def _kind_defaults(self, rt, obj, old):
        """Per-kind defaulting, like the real registry strategies (a subset)."""
        key = rt.storage_key
        meta = obj["metadata"]
        if key == "/namespaces":
            obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
            obj.setdefault("status", {}).setdefault("phase", "Active")
            meta.setdefault("labels", {})["kubernetes.io/metadata.name"] = meta["name"]
        elif key == "/services":
            self._service_defaults(obj, old)
        elif key == "/secrets":
            obj.setdefault("type", "Opaque")
            string_data = obj.pop("stringData", None)
            if string_data:
                data = obj.setdefault("data", {})
                for k, v in string_data.items():
                    data[k] = base64.b64encode(str(v).encode()).decode()
        elif key == "discovery.k8s.io/endpointslices":
            for port in obj.get("ports") or []:
                port.setdefault("protocol", "TCP")
        elif key == "networking.k8s.io/ingresses" and old is None:
            obj["status"] = {"loadBalancer": {}}

    def _service_defaults(self, obj, old):
        spec = obj.setdefault("spec", {})
        old_spec = (old or {}).get("spec") or {}
        stype = spec.setdefault("type", "ClusterIP")
        spec.setdefault("sessionAffinity", "None")
        if stype != "ExternalName":
            # the real apiserver keeps allocated values when an update omits them
            for fld in ("clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"):
                if fld not in spec and fld in old_spec:
                    spec[fld] = old_spec[fld]
            if not spec.get("clusterIP"):
                spec["clusterIP"] = self._alloc_ip()
            spec.setdefault("clusterIPs", [spec["clusterIP"]])
            spec.setdefault("ipFamilies", ["IPv4"])
            spec.setdefault("ipFamilyPolicy", "SingleStack")
            spec.setdefault("internalTrafficPolicy", "Cluster")
        old_ports = {(p.get("port"), p.get("protocol", "TCP")): p
                     for p in old_spec.get("ports") or []}
        for port in spec.get("ports") or []:
            port.setdefault("protocol", "TCP")
            port.setdefault("targetPort", port.get("port"))
            if stype in ("NodePort", "LoadBalancer"):
                prev = old_ports.get((port.get("port"), port["protocol"]), {})
                if not port.get("nodePort"):
                    want_alloc = stype == "NodePort" or spec.get(
                        "allocateLoadBalancerNodePorts", True)
                    if prev.get("nodePort"):
                        port["nodePort"] = prev["nodePort"]
                    elif want_alloc:
                        port["nodePort"] = self._alloc_node_port()
        if stype in ("NodePort", "LoadBalancer"):
            spec.setdefault("externalTrafficPolicy", "Cluster")
        if stype == "LoadBalancer":
            spec.setdefault("allocateLoadBalancerNodePorts", True)
        if old is None:
            obj["status"] = {"loadBalancer": {}}

    def _kind_validate(self, rt, obj):
        causes = []
        key = rt.storage_key
        if key == "/services":
            spec = obj.get("spec") or {}
            stype = spec.get("type")
            if stype not in ("ClusterIP", "NodePort", "LoadBalancer", "ExternalName"):
                causes.append(("spec.type", "FieldValueNotSupported",
                               f'Unsupported value: "{stype}": supported values: "ClusterIP", '
                               f'"ExternalName", "LoadBalancer", "NodePort"'))
            ports = spec.get("ports") or []
            if not ports and stype != "ExternalName" and spec.get("clusterIP") != "None":
                causes.append(("spec.ports", "FieldValueRequired", "Required value"))
            for i, p in enumerate(ports):
                port = p.get("port")
                if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
                    causes.append((f"spec.ports[{i}].port", "FieldValueInvalid",
                                   f"Invalid value: {json.dumps(port)}: must be between 1 and "
                                   f"65535, inclusive"))
                if p.get("protocol") not in ("TCP", "UDP", "SCTP"):
                    causes.append((f"spec.ports[{i}].protocol", "FieldValueNotSupported",
                                   f'Unsupported value: "{p.get("protocol")}": supported values: '
                                   f'"SCTP", "TCP", "UDP"'))
                if len(ports) > 1 and not p.get("name"):
                    causes.append((f"spec.ports[{i}].name", "FieldValueRequired",
                                   "Required value"))
        elif key == "/secrets":
            for k, v in (obj.get("data") or {}).items():
                try:
                    base64.b64decode(v, validate=True)
                except (binascii.Error, TypeError, ValueError):
                    causes.append((f"data[{k}]", "FieldValueInvalid",
                                   "Invalid value: illegal base64 data"))
        elif key == "core/events" and "involvedObject" in obj:
            # legacyValidateEvent (pkg/apis/core/validation/events.go): an Event without eventTime
            # lives in its involved object's namespace; one about a cluster-scoped object in ""
            # or "default" only (with eventTime: "default" or "kube-system").
            ns = (obj.get("metadata") or {}).get("namespace") or ""
            ino = (obj.get("involvedObject") or {}).get("namespace") or ""
            allowed = ({"", "default"} if not obj.get("eventTime") else {"default", "kube-system"}) if not ino else {ino}
            if ns not in allowed:
                causes.append(("involvedObject.namespace", "FieldValueInvalid",
                               f'Invalid value: "{ino}": does not match event.namespace'))
        elif key == "coordination.k8s.io/leases":
            dur = (obj.get("spec") or {}).get("leaseDurationSeconds")
            if dur is not None and (not isinstance(dur, int) or dur <= 0):
                causes.append(("spec.leaseDurationSeconds", "FieldValueInvalid",
                               f"Invalid value: {dur}: must be greater than 0"))
        elif key == "apiextensions.k8s.io/customresourcedefinitions":
            causes += self._crd_validate(obj)
        return causes

    def _crd_validate(self, crd):
        causes = []
        spec = crd.get("spec") or {}
        names = spec.get("names") or {}
        group, plural = spec.get("group", ""), names.get("plural", "")
        if not group:
            causes.append(("spec.group", "FieldValueRequired", "Required value"))
        if not plural:
            causes.append(("spec.names.plural", "FieldValueRequired", "Required value"))
        if not names.get("kind"):
            causes.append(("spec.names.kind", "FieldValueRequired", "Required value"))
        if crd["metadata"].get("name") != f"{plural}.{group}":
            causes.append(("metadata.name", "FieldValueInvalid",
                           f'Invalid value: "{crd["metadata"].get("name")}": must be '
                           f'spec.names.plural+"."+spec.group'))
        if spec.get("scope") not in ("Namespaced", "Cluster"):
            causes.append(("spec.scope", "FieldValueNotSupported",
                           f'Unsupported value: "{spec.get("scope")}": supported values: '
                           f'"Cluster", "Namespaced"'))
        versions = spec.get("versions") or []
        if not versions:
            causes.append(("spec.versions", "FieldValueInvalid",
                           "Invalid value: must have exactly one version marked as storage "
                           "version"))
        elif sum(1 for v in versions if v.get("storage")) != 1:
            causes.append(("spec.versions", "FieldValueInvalid",
                           "Invalid value: must have exactly one version marked as storage "
                           "version"))
        if group and group in BUILTIN_GROUP_ORDER:
            causes.append(("spec.group", "FieldValueInvalid",
                           f'Invalid value: "{group}": is a built-in group'))
        return causes

    def _crd_status(self, crd):
        spec = crd.get("spec") or {}
        ts = now_rfc3339()
        status = {
            "acceptedNames": copy.deepcopy(spec.get("names") or {}),
            "conditions": [
                {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts",
                 "message": "no conflicts found", "lastTransitionTime": ts},
                {"type": "Established", "status": "True", "reason": "InitialNamesAccepted",
                 "message": "the initial names have been accepted", "lastTransitionTime": ts},
            ],
            "storedVersions": [v["name"] for v in spec.get("versions") or [] if v.get("storage")],
        }
        old = crd.get("status") or {}
        if old.get("conditions"):       # keep transition times stable across updates
            status["conditions"] = old["conditions"]
        stored = list(old.get("storedVersions") or [])
        for v in status["storedVersions"]:
            if v not in stored:
                stored.append(v)
        status["storedVersions"] = stored
        status["acceptedNames"].setdefault("singular", status["acceptedNames"].get(
            "kind", "").lower())
        status["acceptedNames"].setdefault("listKind", status["acceptedNames"].get(
            "kind", "") + "List")
        crd["status"] = status

    def _admit(self, rt, obj, params):
        """Schema handling for custom resources plus validation; returns the
        object to store and the warnings for the response."""
        warnings = []
        if rt.crd and rt.schema:
            res = apply_schema(obj, rt.schema)
            obj = res.obj
            mode = (params.get("fieldValidation") or ["Warn"])[0]
            if res.unknown and mode == "Strict":
                raise E.bad_request("strict decoding error: " + ", ".join(
                    f'unknown field "{u}"' for u in res.unknown))
            if res.unknown and mode != "Ignore":
                warnings += [f'unknown field "{u}"' for u in res.unknown]
            causes = res.errors
        else:
            causes = []
        causes = self._validate_meta(rt, obj) + causes + self._kind_validate(rt, obj)
        if causes:
            raise E.invalid(rt.kind, rt.group, obj["metadata"].get("name", ""), causes)
        return obj, warnings

    # --------------------------------------------------------------- reads

    def get(self, rt, ns, name):
        with self.store.lock:
            obj = self.store.get(rt.storage_key, ns if rt.namespaced else "", name)
            if obj is None:
                raise self._not_found(rt, name)
            return present(rt, obj)

    def matcher(self, rt, ns, params):
        """A predicate on stored objects for namespace + label + field selectors."""
        lsel = L.parse_label_selector((params.get("labelSelector") or [""])[0])
        fsel = L.parse_field_selector((params.get("fieldSelector") or [""])[0])

        def match(obj):
            meta = obj.get("metadata") or {}
            if rt.namespaced and ns and meta.get("namespace") != ns:
                return False
            if not L.match_labels(lsel, meta.get("labels")):
                return False
            return not fsel or L.match_fields(fsel, present(rt, obj))
        return match, bool(lsel or fsel)

    def list(self, rt, ns, params):
        """Returns (presented items, list metadata)."""
        match, filtered = self.matcher(rt, ns, params)
        try:
            limit = int((params.get("limit") or ["0"])[0] or 0)
        except ValueError:
            raise E.bad_request("limit must be an integer")
        token = (params.get("continue") or [""])[0]
        rv_param = (params.get("resourceVersion") or [""])[0]
        rv_match = (params.get("resourceVersionMatch") or [""])[0]
        start = None
        with self.store.lock:
            if token:
                list_rv, start = self._decode_continue(token)
                if list_rv < self.store.compacted_rv:
                    raise E.expired(
                        "The provided continue parameter is too old to display a consistent "
                        "list result. You can start a new list without the continue "
                        "parameter, or use the continue token in this response to retrieve "
                        "the remainder of the results. Continuing with the provided token "
                        "results in an inconsistent list - objects that were created, "
                        "modified, or deleted between the time the first chunk was returned "
                        "and now may show up in the list.")
                state = self.store.state_at(rt.storage_key, list_rv)
            elif rv_param not in ("", "0") and rv_match == "Exact":
                list_rv = self._parse_rv(rv_param)
                if list_rv < self.store.compacted_rv:
                    raise E.expired(f"too old resource version: {list_rv} "
                                    f"({self.store.compacted_rv})")
                if list_rv > self.store.rv:
                    raise E.ApiError(504, "Timeout", f"Too large resource version: {list_rv}, "
                                     f"current: {self.store.rv}")
                state = self.store.state_at(rt.storage_key, list_rv)
            else:
                if rv_param not in ("", "0") and self._parse_rv(rv_param) > self.store.rv:
                    raise E.ApiError(504, "Timeout", f"Too large resource version: {rv_param}, "
                                     f"current: {self.store.rv}")
                list_rv = self.store.rv
                state = self.store.objects.get(rt.storage_key, {})
            keys = sorted(k for k in state if (not rt.namespaced or not ns or k[0] == ns))
            if start is not None:
                keys = [k for k in keys if list(k) > start]
            items, last_key, remaining = [], None, 0
            for k in keys:
                obj = state[k]
                if not match(obj):
                    continue
                if limit and len(items) >= limit:
                    remaining += 1
                    continue
                items.append(present(rt, obj))
                last_key = k
        meta = {"resourceVersion": str(list_rv)}
        if remaining:
            meta["continue"] = self._encode_continue(list_rv, last_key)
            if not filtered:
                meta["remainingItemCount"] = remaining
        return items, meta

    @staticmethod
    def _parse_rv(text):
        try:
            return int(text)
        except ValueError:
            raise E.bad_request(f'invalid resource version "{text}"')

    @staticmethod
    def _encode_continue(rv, key):
        raw = json.dumps({"v": "meta.k8s.io/v1", "rv": rv, "start": list(key)})
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    @staticmethod
    def _decode_continue(token):
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
            data = json.loads(raw)
            return int(data["rv"]), list(data["start"])
        except (ValueError, KeyError, TypeError, binascii.Error):
            raise E.bad_request("continue key is not valid: malformed continue token")

    # -------------------------------------------------------------- writes

    def create(self, rt, ns, body, params):
        """POST: returns (presented object, warnings)."""
        obj = self._decode(rt, body)
        meta = obj["metadata"]
        if not meta.get("name"):
            if meta.get("generateName"):
                meta["name"] = meta["generateName"] + "".join(
                    pysecrets.choice("bcdfghjklmnpqrstvwxz2456789") for _ in range(5))
            else:
                raise E.invalid(rt.kind, rt.group, "", [(
                    "metadata.name", "FieldValueRequired", "Required value: name or "
                    "generateName is required")])
        with self.store.lock:
            self._check_namespace(rt, ns, meta)
            key_ns = ns if rt.namespaced else ""
            if self.store.get(rt.storage_key, key_ns, meta["name"]) is not None:
                raise E.already_exists(rt.plural, rt.group, meta["name"])
            obj = to_storage(rt, obj)
            for fld in ("uid", "resourceVersion", "generation", "deletionTimestamp",
                        "deletionGracePeriodSeconds", "managedFields", "selfLink"):
                meta.pop(fld, None)
            if rt.status and rt.storage_key not in ("/nodes",):
                obj.pop("status", None)
            self._kind_defaults(rt, obj, None)
            obj, warnings = self._admit(rt, obj, params)
            meta = obj["metadata"]
            if rt.crd == "" and rt.plural == "customresourcedefinitions":
                self._crd_status(obj)
            meta["uid"] = str(uuid.uuid4())
            meta["creationTimestamp"] = now_rfc3339()
            if self._uses_generation(rt):
                meta["generation"] = 1
            if self._dry_run(params):
                return present(rt, obj), warnings
            meta["resourceVersion"] = str(self.store.next_rv())
            self.store.record(rt.storage_key, "ADDED", obj, None)
            if rt.plural == "customresourcedefinitions" and not rt.crd:
                self.registry.set_crd(obj)
            return present(rt, obj), warnings

    def update(self, rt, ns, name, body, params, subresource=""):
        """PUT (main resource or /status): returns (object, warnings)."""
        obj = self._decode(rt, body)
        meta = obj["metadata"]
        if meta.get("name") and meta["name"] != name:
            raise E.bad_request(f"the name of the object ({meta['name']}) does not match the "
                                f"name on the URL ({name})")
        if rt.namespaced and meta.get("namespace") and meta["namespace"] != ns:
            raise E.bad_request("the namespace of the provided object does not match the "
                                "namespace sent on the request")
        with self.store.lock:
            old = self.store.get(rt.storage_key, ns if rt.namespaced else "", name)
            if old is None:
                raise self._not_found(rt, name)
            self._preconditions(rt, old, meta.get("resourceVersion"), meta.get("uid"))
            return self._commit_update(rt, old, to_storage(rt, obj), params, subresource)

    def patch(self, rt, ns, name, content_type, body, params, subresource=""):
        """PATCH with one of the four patch content types."""
        try:
            patch = json.loads(body or b"null")
        except ValueError as exc:
            raise E.bad_request(f"error decoding patch: {exc}")
        ptype = content_type.split(";")[0].strip()
        with self.store.lock:
            old = self.store.get(rt.storage_key, ns if rt.namespaced else "", name)
            if ptype == "application/apply-patch+yaml":
                if not (params.get("fieldManager") or [""])[0]:
                    raise E.bad_request("PATCH, application/apply-patch+yaml requires "
                                        "fieldManager to be set")
                if old is None:
                    if not isinstance(patch, dict):
                        raise E.bad_request("apply patch must be a JSON/YAML object")
                    patch = dict(patch)
                    patch.setdefault("metadata", {}).setdefault("name", name)
                    return self.create(rt, ns, patch, params)
            if old is None:
                raise self._not_found(rt, name)
            current = present(rt, old)
            if ptype == "application/merge-patch+json":
                if not isinstance(patch, dict):
                    raise E.bad_request("merge patch must be a JSON object")
                patched = P.merge_patch(current, patch)
            elif ptype == "application/json-patch+json":
                patched = P.json_patch(current, patch)
            elif ptype == "application/strategic-merge-patch+json":
                if rt.crd:
                    raise E.ApiError(415, "UnsupportedMediaType",
                                     f"the body of the request was in an unknown format - "
                                     f"accepted media types include: application/json-patch+json, "
                                     f"application/merge-patch+json, application/apply-patch+yaml")
                patched = P.strategic_merge_patch(current, patch, rt.kind)
            elif ptype == "application/apply-patch+yaml":
                if not isinstance(patch, dict):
                    raise E.bad_request("apply patch must be a JSON/YAML object")
                patch = {k: v for k, v in patch.items()}
                patch.get("metadata", {}).pop("resourceVersion", None)
                patched = P.merge_patch(current, patch)
            else:
                raise E.ApiError(415, "UnsupportedMediaType",
                                 f"the body of the request was in an unknown format - accepted "
                                 f"media types include: application/json-patch+json, "
                                 f"application/merge-patch+json, "
                                 f"application/apply-patch+yaml, "
                                 f"application/strategic-merge-patch+json")
            if not isinstance(patched, dict):
                raise E.bad_request("the patched object is not a JSON object")
            pmeta = patched.get("metadata") or {}
            if pmeta.get("name", name) != name:
                raise E.bad_request("metadata.name may not be changed by a patch")
            rv = pmeta.get("resourceVersion")
            self._preconditions(rt, old, rv if rv != old["metadata"]["resourceVersion"] else None,
                                pmeta.get("uid"))
            patched = self._decode(rt, patched)
            return self._commit_update(rt, old, to_storage(rt, patched), params, subresource)

    def _preconditions(self, rt, old, rv, uid):
        name = old["metadata"]["name"]
        if uid and uid != old["metadata"].get("uid"):
            raise E.conflict(rt.plural, rt.group, name,
                             f"Precondition failed: UID in precondition: {uid}, UID in object "
                             f"meta: {old['metadata'].get('uid')}")
        if rv and rv != old["metadata"].get("resourceVersion"):
            raise E.conflict(rt.plural, rt.group, name)

    def _commit_update(self, rt, old, new, params, subresource):
        """Shared tail of PUT and PATCH: server-owned fields, status rules,
        defaults, admission, generation, no-op detection, finalization."""
        new = copy.deepcopy(new)
        old_meta = old["metadata"]
        if subresource == "status":
            status = new.get("status")
            new = copy.deepcopy(old)
            if status is None:
                new.pop("status", None)
            else:
                new["status"] = status
        elif rt.status:
            if "status" in old:
                new["status"] = copy.deepcopy(old["status"])
            else:
                new.pop("status", None)
        meta = new.setdefault("metadata", {})
        for fld in ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds",
                    "generation", "namespace", "name"):
            if fld in old_meta:
                meta[fld] = old_meta[fld]
            else:
                meta.pop(fld, None)
        meta.pop("managedFields", None)
        meta.pop("selfLink", None)
        meta["resourceVersion"] = old_meta["resourceVersion"]
        if old_meta.get("deletionTimestamp"):
            added = set(meta.get("finalizers") or []) - set(old_meta.get("finalizers") or [])
            if added:
                raise E.ApiError(422, "Invalid",
                                 f"metadata.finalizers: Forbidden: no new finalizers can be added "
                                 f"if the object is being deleted, found new finalizers "
                                 f"{sorted(added)}")
        self._kind_defaults(rt, new, old)
        new, warnings = self._admit(rt, new, params)
        meta = new["metadata"]
        if rt.plural == "customresourcedefinitions" and not rt.crd:
            self._crd_status(new)
        if self._uses_generation(rt) and _strip_meta_status(new) != _strip_meta_status(old):
            meta["generation"] = int(old_meta.get("generation") or 1) + 1
        finalize = bool(old_meta.get("deletionTimestamp")) and not meta.get("finalizers")
        if new == old and not finalize:
            return present(rt, old), warnings            # no-op: no new resourceVersion
        if self._dry_run(params):
            return present(rt, new), warnings
        if finalize:
            return present(rt, self._remove(rt, new, old)), warnings
        meta["resourceVersion"] = str(self.store.next_rv())
        self.store.record(rt.storage_key, "MODIFIED", new, old)
        if rt.plural == "customresourcedefinitions" and not rt.crd:
            self.registry.set_crd(new)
        return present(rt, new), warnings

    def delete(self, rt, ns, name, options, params):
        """DELETE one object; honours preconditions and finalizers."""
        options = options or {}
        with self.store.lock:
            old = self.store.get(rt.storage_key, ns if rt.namespaced else "", name)
            if old is None:
                raise self._not_found(rt, name)
            pre = options.get("preconditions") or {}
            self._preconditions(rt, old, pre.get("resourceVersion"), pre.get("uid"))
            if self._dry_run(params) or "All" in (options.get("dryRun") or []):
                return present(rt, old)
            if old["metadata"].get("finalizers"):
                if old["metadata"].get("deletionTimestamp"):
                    return present(rt, old)
                new = copy.deepcopy(old)
                new["metadata"]["deletionTimestamp"] = now_rfc3339()
                new["metadata"]["deletionGracePeriodSeconds"] = 0
                if self._uses_generation(rt):
                    new["metadata"]["generation"] = int(old["metadata"].get("generation", 1)) + 1
                new["metadata"]["resourceVersion"] = str(self.store.next_rv())
                self.store.record(rt.storage_key, "MODIFIED", new, old)
                return present(rt, new)
            return present(rt, self._remove(rt, old, old))

    def delete_collection(self, rt, ns, params, options):
        match, _ = self.matcher(rt, ns, params)
        with self.store.lock:
            victims = [o for o in self.store.items(rt.storage_key,
                                                   ns if rt.namespaced and ns else None)
                       if match(o)]
            return [self.delete(rt, o["metadata"].get("namespace", ""), o["metadata"]["name"],
                                options, params) for o in victims]

    def _remove(self, rt, final, old):
        """Remove an object now, cascading for namespaces and CRDs. Returns
        the object as carried by the DELETED event."""
        if rt.storage_key == "/namespaces":
            ns = final["metadata"]["name"]
            for key in list(self.store.objects):
                for (ons, _), obj in sorted(self.store.objects[key].items()):
                    if ons == ns:
                        gone = copy.deepcopy(obj)
                        gone["metadata"]["resourceVersion"] = str(self.store.next_rv())
                        self.store.record(key, "DELETED", gone, obj)
        if rt.plural == "customresourcedefinitions" and not rt.crd:
            spec = final.get("spec") or {}
            key = f"{spec.get('group', '')}/{(spec.get('names') or {}).get('plural', '')}"
            for obj in self.store.items(key):
                gone = copy.deepcopy(obj)
                gone["metadata"]["resourceVersion"] = str(self.store.next_rv())
                self.store.record(key, "DELETED", gone, obj)
            self.store.objects.pop(key, None)
            self.registry.remove_crd(final["metadata"]["name"])
        gone = copy.deepcopy(final)
        gone["metadata"]["resourceVersion"] = str(self.store.next_rv())
        self.store.record(rt.storage_key, "DELETED", gone, old)
        return gone


class WatchFilter:
    """Turns store events into the watch events one watcher should see, with
    selector transitions: an object modified into the selector is ADDED, one
    modified out of it is DELETED (as the real apiserver does)."""

    def __init__(self, api, rt, ns, params):
        self.rt = rt
        self.match, _ = api.matcher(rt, ns, params)

    def convert(self, ev):
        if ev.key != self.rt.storage_key:
            return None
        new_ok = self.match(ev.obj)
        if ev.type == "ADDED":
            return ("ADDED", ev.obj) if new_ok else None
        if ev.type == "DELETED":
            return ("DELETED", ev.obj) if (new_ok or (ev.old is not None
                                                      and self.match(ev.old))) else None
        old_ok = ev.old is not None and self.match(ev.old)
        if new_ok and old_ok:
            return ("MODIFIED", ev.obj)
        if new_ok:
            return ("ADDED", ev.obj)
        if old_ok:
            return ("DELETED", ev.obj)
        return None
