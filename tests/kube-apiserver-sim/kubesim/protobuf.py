"""Decoding of Kubernetes protobuf request bodies, for a few kinds.

kubectl's typed clients (``kubectl create namespace|configmap|secret|
serviceaccount|service|ingress``) send ``application/vnd.kubernetes.protobuf``
bodies. This module turns those into the JSON form the rest of the server
uses. The wire format is the ``k8s\\x00`` magic followed by a
``runtime.Unknown`` message {1: TypeMeta{1: apiVersion, 2: kind}, 2: raw}; the
raw object is decoded with the field tables below (field numbers of the
k8s.io/api generated.proto files, limited to the fields those commands set).
Other kinds are refused with 415, as are protobuf responses: the server
always answers JSON, which every client accepts.
"""

import base64

from .errors import ApiError

MAGIC = b"k8s\x00"


class _Msg:
    """A message schema: {field number: (json name, field type)}.
    Field types: 'str', 'int', 'bool', 'bytes', 'intorstr', 'map:str',
    'map:bytes', ('msg', _Msg), ('list', type), ('inline', _Msg)."""

    def __init__(self, fields):
        self.fields = fields


TIME = _Msg({})   # creationTimestamp etc.: server-managed, ignored
OBJECT_META = _Msg({1: ("name", "str"), 2: ("generateName", "str"), 3: ("namespace", "str"),
                    11: ("labels", "map:str"), 12: ("annotations", "map:str"),
                    14: ("finalizers", ("list", "str"))})
NAMESPACE = _Msg({1: ("metadata", ("msg", OBJECT_META)),
                  2: ("spec", ("msg", _Msg({1: ("finalizers", ("list", "str"))})))})
CONFIG_MAP = _Msg({1: ("metadata", ("msg", OBJECT_META)), 2: ("data", "map:str"),
                   3: ("binaryData", "map:bytes"), 4: ("immutable", "bool")})
SECRET = _Msg({1: ("metadata", ("msg", OBJECT_META)), 2: ("data", "map:bytes"),
               3: ("type", "str"), 4: ("stringData", "map:str"), 5: ("immutable", "bool")})
SERVICE_ACCOUNT = _Msg({1: ("metadata", ("msg", OBJECT_META)),
                        4: ("automountServiceAccountToken", "bool")})
SERVICE_PORT = _Msg({1: ("name", "str"), 2: ("protocol", "str"), 3: ("port", "int"),
                     4: ("targetPort", "intorstr"), 5: ("nodePort", "int"),
                     6: ("appProtocol", "str")})
SERVICE = _Msg({1: ("metadata", ("msg", OBJECT_META)), 2: ("spec", ("msg", _Msg({
    1: ("ports", ("list", ("msg", SERVICE_PORT))), 2: ("selector", "map:str"),
    3: ("clusterIP", "str"), 4: ("type", "str"), 5: ("externalIPs", ("list", "str")),
    7: ("sessionAffinity", "str"), 8: ("loadBalancerIP", "str"),
    9: ("loadBalancerSourceRanges", ("list", "str")), 10: ("externalName", "str"),
    11: ("externalTrafficPolicy", "str"), 12: ("healthCheckNodePort", "int"),
    13: ("publishNotReadyAddresses", "bool")})))})
_BACKEND_PORT = _Msg({1: ("name", "str"), 2: ("number", "int")})
_BACKEND = _Msg({4: ("service", ("msg", _Msg({1: ("name", "str"),
                                              2: ("port", ("msg", _BACKEND_PORT))}))),
                 3: ("resource", ("msg", _Msg({1: ("apiGroup", "str"), 2: ("kind", "str"),
                                               3: ("name", "str")})))})
_HTTP_PATH = _Msg({1: ("path", "str"), 2: ("backend", ("msg", _BACKEND)),
                   3: ("pathType", "str")})
_RULE = _Msg({1: ("host", "str"), 2: ("", ("inline", _Msg({
    1: ("http", ("msg", _Msg({1: ("paths", ("list", ("msg", _HTTP_PATH)))})))})))})
INGRESS = _Msg({1: ("metadata", ("msg", OBJECT_META)), 2: ("spec", ("msg", _Msg({
    1: ("defaultBackend", ("msg", _BACKEND)),
    2: ("tls", ("list", ("msg", _Msg({1: ("hosts", ("list", "str")),
                                      2: ("secretName", "str")})))),
    3: ("rules", ("list", ("msg", _RULE))), 4: ("ingressClassName", "str")})))})

KINDS = {("v1", "Namespace"): NAMESPACE, ("v1", "ConfigMap"): CONFIG_MAP,
         ("v1", "Secret"): SECRET, ("v1", "ServiceAccount"): SERVICE_ACCOUNT,
         ("v1", "Service"): SERVICE, ("networking.k8s.io/v1", "Ingress"): INGRESS}


def _varint(buf, i):
    result = shift = 0
    while True:
        if i >= len(buf):
            raise ValueError("truncated varint")
        byte = buf[i]
        i += 1
        result |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return result, i


def _fields(buf):
    """Yield (field number, wire type, value) of one message."""
    i = 0
    while i < len(buf):
        key, i = _varint(buf, i)
        num, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _varint(buf, i)
        elif wire == 2:
            size, i = _varint(buf, i)
            value, i = buf[i:i + size], i + size
            if i > len(buf):
                raise ValueError("truncated field")
        elif wire == 1:
            value, i = buf[i:i + 8], i + 8
        elif wire == 5:
            value, i = buf[i:i + 4], i + 4
        else:
            raise ValueError(f"unsupported wire type {wire}")
        yield num, wire, value


def _scalar(ftype, wire, value):
    if ftype == "str":
        return value.decode("utf-8")
    if ftype == "bytes":
        return base64.b64encode(value).decode()
    if ftype == "int":
        return value - (1 << 64) if value >= 1 << 63 else value
    if ftype == "bool":
        return bool(value)
    if ftype == "intorstr":
        parts = {n: v for n, _, v in _fields(value)}
        return parts.get(3, b"").decode() if parts.get(1) == 1 else parts.get(2, 0)
    raise ValueError(f"unknown field type {ftype}")


def _decode(buf, msg):
    out = {}
    for num, wire, value in _fields(buf):
        if num not in msg.fields:
            continue
        name, ftype = msg.fields[num]
        if isinstance(ftype, str) and ftype.startswith("map:"):
            entry = {n: v for n, _, v in _fields(value)}
            key = entry.get(1, b"").decode()
            out.setdefault(name, {})[key] = _scalar(ftype[4:], 2, entry.get(2, b""))
        elif isinstance(ftype, tuple) and ftype[0] == "list":
            inner = ftype[1]
            item = (_decode(value, inner[1]) if isinstance(inner, tuple)
                    else _scalar(inner, wire, value))
            out.setdefault(name, []).append(item)
        elif isinstance(ftype, tuple) and ftype[0] == "msg":
            out[name] = _decode(value, ftype[1])
        elif isinstance(ftype, tuple) and ftype[0] == "inline":
            out.update(_decode(value, ftype[1]))
        else:
            out[name] = _scalar(ftype, wire, value)
    # proto2 sends every field; JSON omits empty ones (omitempty)
    return {k: v for k, v in out.items() if v not in ("", 0, False, {}, [], None)}


def decode_object(body):
    """Decode a protobuf request body into a JSON-style object dict."""
    if not body.startswith(MAGIC):
        raise ApiError(400, "BadRequest", "protobuf body lacks the k8s magic prefix")
    try:
        unknown = {n: v for n, _, v in _fields(body[len(MAGIC):])}
        type_meta = {n: v.decode() for n, _, v in _fields(unknown.get(1, b""))}
        api_version, kind = type_meta.get(1, ""), type_meta.get(2, "")
        schema = KINDS.get((api_version, kind))
        if schema is None:
            raise ApiError(415, "UnsupportedMediaType",
                           f"the body of the request was in an unknown format - this test "
                           f"server decodes protobuf only for {sorted(k for _, k in KINDS)}; "
                           f"send {kind or 'this kind'} as application/json")
        obj = _decode(unknown.get(2, b""), schema)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, "BadRequest", f"malformed protobuf body: {exc}")
    obj["apiVersion"], obj["kind"] = api_version, kind
    obj.setdefault("metadata", {})
    return obj
