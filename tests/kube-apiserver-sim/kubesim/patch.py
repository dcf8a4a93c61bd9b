"""The patch formats of the Kubernetes API.

* JSON merge patch (RFC 7386, ``application/merge-patch+json``).
* JSON patch (RFC 6902, ``application/json-patch+json``).
* Strategic merge patch (``application/strategic-merge-patch+json``), an
  approximation: the real server reads merge keys and strategies from the Go
  types; here a small table (``_merge_key``) names the lists that merge by key
  (containers/env/volumes by ``name``, Service ``spec.ports`` by ``port``,
  container ports by ``containerPort``, ``conditions`` by ``type``,
  ownerReferences by ``uid``, Node ``status.addresses`` by ``type``) and the
  primitive lists that merge as sets (``metadata.finalizers``); every other list
  is replaced whole. The directives ``$patch`` (replace/delete/merge),
  ``$retainKeys``, ``$setElementOrder/<field>`` and
  ``$deleteFromPrimitiveList/<field>`` are honoured, which is what kubectl's
  three-way client-side apply emits.

All functions return new objects and never mutate their inputs.
"""

import copy

from .errors import ApiError, bad_request

_DELETE = object()
_PRIMITIVE_SET = "<primitive-set>"


def _invalid_patch(message):
    return ApiError(422, "Invalid", message)


# ---------------------------------------------------------------- merge patch

def merge_patch(target, patch):
    """Apply an RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


# ----------------------------------------------------------------- json patch

def _unescape(token):
    return token.replace("~1", "/").replace("~0", "~")


def _split_pointer(pointer):
    if pointer == "":
        return []
    if not pointer.startswith("/"):
        raise _invalid_patch(f'json patch: invalid path "{pointer}"')
    return [_unescape(t) for t in pointer[1:].split("/")]


def _resolve_parent(doc, tokens, pointer):
    cur = doc
    for tok in tokens[:-1]:
        if isinstance(cur, dict) and tok in cur:
            cur = cur[tok]
        elif isinstance(cur, list) and tok.isdigit() and int(tok) < len(cur):
            cur = cur[int(tok)]
        else:
            raise _invalid_patch(f'json patch: doc is missing path: "{pointer}"')
    return cur


def _get(doc, pointer):
    tokens = _split_pointer(pointer)
    if not tokens:
        return doc
    parent = _resolve_parent(doc, tokens, pointer)
    last = tokens[-1]
    if isinstance(parent, dict) and last in parent:
        return parent[last]
    if isinstance(parent, list) and last.isdigit() and int(last) < len(parent):
        return parent[int(last)]
    raise _invalid_patch(f'json patch: doc is missing path: "{pointer}"')


def _add(doc, pointer, value):
    tokens = _split_pointer(pointer)
    if not tokens:
        return value
    parent = _resolve_parent(doc, tokens, pointer)
    last = tokens[-1]
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        if last == "-":
            parent.append(value)
        elif last.isdigit() and int(last) <= len(parent):
            parent.insert(int(last), value)
        else:
            raise _invalid_patch(f'json patch: index out of range: "{pointer}"')
    else:
        raise _invalid_patch(f'json patch: doc is missing path: "{pointer}"')
    return doc


def _remove(doc, pointer):
    tokens = _split_pointer(pointer)
    if not tokens:
        raise _invalid_patch("json patch: cannot remove the whole document")
    parent = _resolve_parent(doc, tokens, pointer)
    last = tokens[-1]
    if isinstance(parent, dict) and last in parent:
        return parent.pop(last)
    if isinstance(parent, list) and last.isdigit() and int(last) < len(parent):
        return parent.pop(int(last))
    raise _invalid_patch(f'json patch: unable to remove nonexistent key: "{pointer}"')


def json_patch(target, ops):
    """Apply an RFC 6902 JSON patch (add/remove/replace/move/copy/test)."""
    if not isinstance(ops, list):
        raise bad_request("json patch must be a JSON array of operations")
    doc = copy.deepcopy(target)
    for op in ops:
        if not isinstance(op, dict) or "op" not in op or "path" not in op:
            raise bad_request(f"json patch: invalid operation {op!r}")
        kind, path = op["op"], op["path"]
        if kind in ("add", "replace", "test") and "value" not in op:
            raise bad_request(f'json patch: "{kind}" operation needs a value')
        if kind == "add":
            doc = _add(doc, path, copy.deepcopy(op["value"]))
        elif kind == "remove":
            _remove(doc, path)
        elif kind == "replace":
            _get(doc, path)  # must exist
            if _split_pointer(path):
                _remove(doc, path)
            doc = _add(doc, path, copy.deepcopy(op["value"]))
        elif kind == "move":
            value = _remove(doc, op.get("from", ""))
            doc = _add(doc, path, value)
        elif kind == "copy":
            doc = _add(doc, path, copy.deepcopy(_get(doc, op.get("from", ""))))
        elif kind == "test":
            if _get(doc, path) != op["value"]:
                raise _invalid_patch(f'json patch: test operation failed for path "{path}"')
        else:
            raise bad_request(f'json patch: unknown operation "{kind}"')
    return doc


# ------------------------------------------------------ strategic merge patch

_BY_NAME = {"containers", "initContainers", "ephemeralContainers", "env", "volumes",
            "imagePullSecrets"}


def _merge_key(kind, path):
    """The merge key of the list at ``path`` (a tuple of field names), or None
    when the list is replaced whole, or _PRIMITIVE_SET for set-merged scalars."""
    last = path[-1] if path else ""
    if path == ("metadata", "finalizers"):
        return _PRIMITIVE_SET
    if path == ("metadata", "ownerReferences"):
        return "uid"
    if last in _BY_NAME:
        return "name"
    if last == "volumeMounts":
        return "mountPath"
    if last == "conditions":
        return "type"
    if last == "ports":
        if kind == "Service" and path == ("spec", "ports"):
            return "port"
        if "containers" in path or "initContainers" in path:
            return "containerPort"
        return None
    if kind == "Node" and path == ("status", "addresses"):
        return "type"
    return None


def _strip_directives(value):
    if isinstance(value, dict):
        return {k: _strip_directives(v) for k, v in value.items()
                if not k.startswith("$")}
    if isinstance(value, list):
        return [_strip_directives(v) for v in value]
    return value


def strategic_merge_patch(target, patch, kind):
    """Apply a strategic merge patch to ``target`` (an object of ``kind``)."""
    if not isinstance(patch, dict):
        raise bad_request("strategic merge patch must be a JSON object")
    result = _smp_map(target if isinstance(target, dict) else {}, patch, kind, ())
    return {} if result is _DELETE else result


def _smp_map(orig, patch, kind, path):
    directive = patch.get("$patch")
    if directive == "replace":
        return _strip_directives({k: v for k, v in patch.items() if k != "$patch"})
    if directive == "delete":
        return _DELETE
    result = dict(orig)
    for key, value in patch.items():
        if key in ("$patch", "$retainKeys") or key.startswith("$setElementOrder/"):
            continue
        if key.startswith("$deleteFromPrimitiveList/"):
            field = key.split("/", 1)[1]
            if isinstance(result.get(field), list):
                result[field] = [x for x in result[field] if x not in (value or [])]
            continue
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict):
            sub = _smp_map(result.get(key) if isinstance(result.get(key), dict) else {},
                           value, kind, path + (key,))
            if sub is _DELETE:
                result.pop(key, None)
            else:
                result[key] = sub
        elif isinstance(value, list):
            result[key] = _smp_list(result.get(key), value, kind, path + (key,))
        else:
            result[key] = value
    for key, order in patch.items():
        if key.startswith("$setElementOrder/"):
            field = key.split("/", 1)[1]
            if isinstance(result.get(field), list) and isinstance(order, list):
                result[field] = _reorder(result[field], order, _merge_key(kind, path + (field,)))
    retain = patch.get("$retainKeys")
    if isinstance(retain, list):
        result = {k: v for k, v in result.items() if k in retain}
    return result


def _smp_list(orig, patch, kind, path):
    orig = orig if isinstance(orig, list) else []
    if any(isinstance(x, dict) and x.get("$patch") == "replace" for x in patch):
        return _strip_directives([x for x in patch
                                  if not (isinstance(x, dict) and "$patch" in x)])
    key = _merge_key(kind, path)
    if key is None:
        return _strip_directives(patch)
    if key == _PRIMITIVE_SET:
        merged = list(orig)
        for item in patch:
            if item not in merged:
                merged.append(item)
        return merged
    result = list(orig)
    for item in patch:
        if not isinstance(item, dict) or key not in item:
            raise _invalid_patch(f"strategic merge patch: list item at {'.'.join(path)} "
                                 f"lacks merge key {key!r}")
        idx = next((i for i, cur in enumerate(result)
                    if isinstance(cur, dict) and cur.get(key) == item[key]), None)
        if item.get("$patch") == "delete":
            if idx is not None:
                result.pop(idx)
            continue
        if idx is None:
            result.append(_strip_directives(item))
        else:
            merged = _smp_map(result[idx], item, kind, path)
            if merged is not _DELETE:
                result[idx] = merged
    return result


def _reorder(items, order, key):
    """Order ``items`` as ``order`` says; items it does not name keep their
    relative order after the named ones."""
    def ident(x):
        if key and key != _PRIMITIVE_SET and isinstance(x, dict):
            return ("k", repr(x.get(key)))
        return ("v", repr(x))
    rank = {ident(o): i for i, o in enumerate(order)}
    named = [x for x in items if ident(x) in rank]
    rest = [x for x in items if ident(x) not in rank]
    named.sort(key=lambda x: rank[ident(x)])
    return named + rest
