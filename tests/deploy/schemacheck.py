"""A validator for the OpenAPI v3 subset our CRD uses, plus the CRD's CEL rules.

Structural schema: type (object/array/string/integer/boolean), properties, required, enum,
pattern, minLength/maxLength, minimum/maximum, minItems/maxItems, maxProperties,
additionalProperties (schema), x-kubernetes-preserve-unknown-fields, default (applied before
validation, as the apiserver does), unknown fields = error (kubectl's fieldValidation=Strict).

CEL: Debian 12 packages no CEL evaluator (no cel-go, no cel-python). Each rule string of the
CRD is mapped to a hand-written Python twin with the same meaning (CEL_RULES below); a rule in
the CRD without a twin is an error. The real rule strings are also compiled and evaluated by a
real CEL implementation (@bufbuild/cel from npm, tests/deploy/cel/) on every collected case, and
test_crd.py requires both to agree. What this cannot prove: that a real kube-apiserver accepts
the rules (its type checking against the schema and its cost budget).
"""
import copy
import re

_DUR = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ns|us|µs|ms|s|m|h)")
_UNIT = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def duration(s):
    """CEL duration(): Go duration syntax -> seconds."""
    pos, total = 0, 0.0
    for m in _DUR.finditer(s):
        if m.start() != pos:
            raise ValueError("bad duration %r" % s)
        total += float(m.group(1)) * _UNIT[m.group(2)]
        pos = m.end()
    if pos != len(s) or not s:
        raise ValueError("bad duration %r" % s)
    return total


def _has(obj, key):
    return isinstance(obj, dict) and key in obj


def _l7(spec, r):
    return any(l["name"] == r["listener"] and l["protocol"] in ("HTTP", "HTTPS") for l in spec["listeners"])


def _exists_one(items, pred):
    return sum(1 for m in items if pred(m)) == 1


# rule text (exactly as in the CRD) -> Python twin taking `self`
CEL_RULES = {
    "self.listeners.all(l, self.listeners.exists_one(m, m.name == l.name))":
        lambda s: all(_exists_one(s["listeners"], lambda m: m["name"] == l["name"]) for l in s["listeners"]),
    "self.listeners.all(l, self.listeners.exists_one(m, m.port == l.port && (m.protocol == 'UDP') == (l.protocol == 'UDP')))":
        lambda s: all(_exists_one(s["listeners"], lambda m: m["port"] == l["port"] and
                                  (m["protocol"] == "UDP") == (l["protocol"] == "UDP")) for l in s["listeners"]),
    "!has(self.routes) || self.routes.all(r, self.routes.exists_one(q, q.name == r.name))":
        lambda s: not _has(s, "routes") or all(_exists_one(s["routes"], lambda q: q["name"] == r["name"]) for r in s["routes"]),
    "!has(self.routes) || self.routes.all(r, self.listeners.exists(l, l.name == r.listener))":
        lambda s: not _has(s, "routes") or all(any(l["name"] == r["listener"] for l in s["listeners"]) for r in s["routes"]),
    "!has(self.routes) || self.routes.all(r, !has(r.match) || !has(r.match.sni) || self.listeners.exists(l, l.name == r.listener && l.protocol == 'TLS'))":
        lambda s: not _has(s, "routes") or all(
            not _has(r, "match") or not _has(r["match"], "sni") or
            any(l["name"] == r["listener"] and l["protocol"] == "TLS" for l in s["listeners"]) for r in s["routes"]),
    "!has(self.routes) || self.routes.all(r, !has(r.match) || !(has(r.match.hosts) || has(r.match.path) || has(r.match.methods) || has(r.match.headers) || has(r.match.queryParams) || has(r.match.cookies)) || self.listeners.exists(l, l.name == r.listener && (l.protocol == 'HTTP' || l.protocol == 'HTTPS')))":
        lambda s: not _has(s, "routes") or all(
            not _has(r, "match") or
            not any(_has(r["match"], k) for k in ("hosts", "path", "methods", "headers", "queryParams", "cookies")) or
            _l7(s, r) for r in s["routes"]),
    "!has(self.routes) || self.routes.all(r, !has(r.filters) || self.listeners.exists(l, l.name == r.listener && (l.protocol == 'HTTP' || l.protocol == 'HTTPS')))":
        lambda s: not _has(s, "routes") or all(not _has(r, "filters") or _l7(s, r) for r in s["routes"]),
    "has(self.backends) || (has(self.filters) && has(self.filters.redirect))":
        lambda s: _has(s, "backends") or (_has(s, "filters") and _has(s["filters"], "redirect")),
    "has(self.tls) == (self.protocol == 'HTTPS')":
        lambda s: _has(s, "tls") == (s["protocol"] == "HTTPS"),
    "!has(self.proxyProtocol) || !has(self.proxyProtocol.send) || self.protocol == 'TCP' || self.protocol == 'TLS'":
        lambda s: not _has(s, "proxyProtocol") or not _has(s["proxyProtocol"], "send") or s["protocol"] in ("TCP", "TLS"),
    "self.type == 'RegularExpression' || self.value.startsWith('/')":
        lambda s: s["type"] == "RegularExpression" or s["value"].startswith("/"),
    "self.type == 'Present' ? !has(self.value) : has(self.value)":
        lambda s: (not _has(s, "value")) if s["type"] == "Present" else _has(s, "value"),
    "has(self.service) != has(self.endpoints)":
        lambda s: _has(s, "service") != _has(s, "endpoints"),
    "!has(self.service) || has(self.port)":
        lambda s: not _has(s, "service") or _has(s, "port"),
    "self.type == 'Cookie' || !has(self.cookieName)":
        lambda s: s["type"] == "Cookie" or not _has(s, "cookieName"),
    "self.type == 'Cookie' || !has(self.path)":
        lambda s: s["type"] == "Cookie" or not _has(s, "path"),
    "!(has(self.redirect) && has(self.rewrite))":
        lambda s: not (_has(s, "redirect") and _has(s, "rewrite")),
    "!has(self.path) || self.protocol == 'HTTP'":
        lambda s: not _has(s, "path") or s["protocol"] == "HTTP",
    "!has(self.timeout) || !has(self.interval) || duration(self.timeout) <= duration(self.interval)":
        lambda s: not _has(s, "timeout") or not _has(s, "interval") or duration(s["timeout"]) <= duration(s["interval"]),
    "!has(self.interval) || duration(self.interval) >= duration('100ms')":
        lambda s: not _has(s, "interval") or duration(s["interval"]) >= duration("100ms"),
    # On a duration field itself (self is the string): durations travel as 32-bit milliseconds.
    "duration(self) > duration('0s') && duration(self) <= duration('1193h')":
        lambda s: 0 < duration(s) <= duration("1193h"),
    "duration(self) <= duration('1193h')":
        lambda s: duration(s) <= duration("1193h"),
    "self.type != 'SourceIP' || !has(self.ttl) || duration(self.ttl) > duration('0s')":
        lambda s: s["type"] != "SourceIP" or not _has(s, "ttl") or duration(s["ttl"]) > 0,
}


def crd_rules(schema, out=None):
    """Every CEL rule string in a schema tree."""
    out = [] if out is None else out
    if isinstance(schema, dict):
        for v in schema.get("x-kubernetes-validations", []):
            out.append(v["rule"])
        for k, v in schema.items():
            if k != "x-kubernetes-validations":
                crd_rules(v, out)
    elif isinstance(schema, list):
        for v in schema:
            crd_rules(v, out)
    return out


_TYPES = {"object": dict, "array": list, "string": str, "boolean": bool}


def apply_defaults(schema, obj):
    if isinstance(obj, dict) and schema.get("type") == "object":
        for k, sub in (schema.get("properties") or {}).items():
            if k not in obj and "default" in sub:
                obj[k] = copy.deepcopy(sub["default"])
            if k in obj:
                apply_defaults(sub, obj[k])
    elif isinstance(obj, list) and "items" in schema:
        for it in obj:
            apply_defaults(schema["items"], it)


def validate(schema, obj, path="", errors=None, cel=True, cases=None):
    """Returns a list of 'path: message' strings (empty = valid). Defaults must be applied first.
    cases, when a list, collects every evaluated CEL rule as {path, rule, message, self, ok}."""
    errors = [] if errors is None else errors
    t = schema.get("type")
    if t == "integer":
        ok = isinstance(obj, int) and not isinstance(obj, bool)
    elif t == "number":
        ok = isinstance(obj, (int, float)) and not isinstance(obj, bool)
    elif t:
        ok = isinstance(obj, _TYPES[t])
    else:
        ok = True
    if not ok:
        errors.append("%s: expected %s, got %r" % (path, t, obj))
        return errors
    if "enum" in schema and obj not in schema["enum"]:
        errors.append("%s: %r not in enum %r" % (path, obj, schema["enum"]))
    if isinstance(obj, str):
        if "pattern" in schema and not re.search(schema["pattern"], obj):
            errors.append("%s: %r does not match %s" % (path, obj, schema["pattern"]))
        if len(obj) < schema.get("minLength", 0) or len(obj) > schema.get("maxLength", 1 << 30):
            errors.append("%s: length %d out of bounds" % (path, len(obj)))
    if isinstance(obj, (int, float)) and not isinstance(obj, bool):
        if obj < schema.get("minimum", float("-inf")) or obj > schema.get("maximum", float("inf")):
            errors.append("%s: %r out of [%s, %s]" % (path, obj, schema.get("minimum"), schema.get("maximum")))
    if isinstance(obj, list):
        if len(obj) < schema.get("minItems", 0) or len(obj) > schema.get("maxItems", 1 << 30):
            errors.append("%s: %d items out of bounds" % (path, len(obj)))
        for i, it in enumerate(obj):
            validate(schema.get("items", {}), it, "%s[%d]" % (path, i), errors, cel, cases)
    if isinstance(obj, dict):
        props = schema.get("properties")
        for r in schema.get("required", []):
            if r not in obj:
                errors.append("%s: Required value" % ((path + "." + r) if path else r))
        if len(obj) > schema.get("maxProperties", 1 << 30):
            errors.append("%s: too many properties" % path)
        for k, v in obj.items():
            sub = path + "." + k if path else k
            if props is not None and k in props:
                validate(props[k], v, sub, errors, cel, cases)
            elif isinstance(schema.get("additionalProperties"), dict):
                validate(schema["additionalProperties"], v, sub, errors, cel, cases)
            elif not schema.get("x-kubernetes-preserve-unknown-fields") and (props is not None or
                                                                             "additionalProperties" in schema):
                errors.append("%s: unknown field" % sub)
    if cel and not errors:
        for v in schema.get("x-kubernetes-validations", []):
            fn = CEL_RULES.get(v["rule"])
            if fn is None:
                errors.append("%s: CEL rule without a Python twin: %s" % (path, v["rule"]))
            else:
                ok = bool(fn(obj))
                if cases is not None:
                    cases.append({"path": path, "rule": v["rule"], "message": v.get("message", v["rule"]),
                                  "self": copy.deepcopy(obj), "ok": ok})
                if not ok:
                    errors.append("%s: %s" % (path, v.get("message", v["rule"])))
    return errors


def validate_object(crd, obj, cases=None):
    """Validate a LoadBalancer object against the CRD's storage version schema."""
    schema = next(v for v in crd["spec"]["versions"] if v.get("storage"))["schema"]["openAPIV3Schema"]
    body = copy.deepcopy({k: v for k, v in obj.items() if k != "status"})
    apply_defaults(schema, body)
    return validate(schema, body, cases=cases)
