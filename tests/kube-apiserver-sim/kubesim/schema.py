"""Structural-schema handling for custom resources.

What the real apiextensions-apiserver does on every write, done here:
  * pruning of fields not declared in ``openAPIV3Schema`` (unless
    ``x-kubernetes-preserve-unknown-fields: true`` or ``additionalProperties``),
    reported back so ``fieldValidation=Strict`` can refuse them and ``Warn``
    can warn;
  * defaulting (``default:``) of absent properties of objects that are present;
  * validation of ``type`` (object/array/string/integer/number/boolean,
    ``x-kubernetes-int-or-string``, ``nullable``), ``required``, ``enum``,
    ``pattern``, ``minLength``/``maxLength``, ``minimum``/``maximum``
    (with ``exclusiveMinimum``/``exclusiveMaximum``), ``minItems``/``maxItems``,
    ``minProperties``/``maxProperties``.

Not done: CEL (``x-kubernetes-validations``), ``format``, ``oneOf``/``anyOf``/
``allOf``/``not``, list-type uniqueness (``x-kubernetes-list-type``),
``x-kubernetes-embedded-resource`` checks, ``metadata`` schema constraints.
"""

import copy
import json
import re


def _type_name(value):
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _show(value):
    return json.dumps(value) if not isinstance(value, str) else f'"{value}"'


class SchemaResult:
    """Outcome of ``apply_schema``: the pruned+defaulted object, the paths of
    pruned (unknown) fields and the validation errors as
    (field, reason, message) triples for errors.invalid()."""

    def __init__(self, obj, unknown, errors):
        self.obj = obj
        self.unknown = unknown
        self.errors = errors


def apply_schema(obj, schema):
    """Prune, default and validate a whole custom resource against the
    version's ``openAPIV3Schema``. ``apiVersion``, ``kind`` and ``metadata``
    are always kept untouched."""
    unknown, errors = [], []
    if not schema:
        return SchemaResult(copy.deepcopy(obj), unknown, errors)
    body = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind", "metadata")}
    root = dict(schema)
    props = dict(root.get("properties") or {})
    for k in ("apiVersion", "kind", "metadata"):
        props.pop(k, None)
    root["properties"] = props
    # required apiVersion/kind/metadata are satisfied by the envelope
    root["required"] = [r for r in root.get("required", [])
                        if r not in ("apiVersion", "kind", "metadata")]
    out = _walk(body, root, "", unknown, errors)
    result = {k: obj[k] for k in ("apiVersion", "kind", "metadata") if k in obj}
    result.update(out if isinstance(out, dict) else {})
    return SchemaResult(copy.deepcopy(result), unknown, errors)


def _join(path, key):
    return f"{path}.{key}" if path else key


def _walk(value, schema, path, unknown, errors):
    if not isinstance(schema, dict) or not schema:
        return value
    if value is None:
        if not schema.get("nullable") and schema.get("type"):
            errors.append((path, "FieldValueTypeInvalid",
                           f'Invalid value: "null": {path} in body must be of type '
                           f'{schema.get("type")}: "null"'))
        return value
    if schema.get("x-kubernetes-int-or-string"):
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            errors.append((path, "FieldValueTypeInvalid",
                           f"Invalid value: {_show(value)}: {path} in body must be of type "
                           f"integer or string: {_show(_type_name(value))}"))
        _check_scalar(value, schema, path, errors)
        return value
    want = schema.get("type")
    have = _type_name(value)
    ok = (want is None or want == have or (want == "number" and have == "integer"))
    if not ok:
        shown = _show(value) if have not in ("object", "array") else f'"{have}"'
        errors.append((path, "FieldValueTypeInvalid",
                       f"Invalid value: {shown}: "
                       f'{path} in body must be of type {want}: "{have}"'))
        return value
    if have == "object":
        return _walk_object(value, schema, path, unknown, errors)
    if have == "array":
        items = schema.get("items")
        out = [_walk(v, items, f"{path}[{i}]", unknown, errors) for i, v in enumerate(value)]
        if "minItems" in schema and len(out) < schema["minItems"]:
            errors.append((path, "FieldValueInvalid",
                           f"Invalid value: {len(out)}: {path} in body should have at least "
                           f"{schema['minItems']} items"))
        if "maxItems" in schema and len(out) > schema["maxItems"]:
            errors.append((path, "FieldValueTooMany",
                           f"Too many: {len(out)}: must have at most {schema['maxItems']} items"))
        return out
    _check_scalar(value, schema, path, errors)
    return value


def _walk_object(value, schema, path, unknown, errors):
    props = schema.get("properties")
    addl = schema.get("additionalProperties")
    preserve = schema.get("x-kubernetes-preserve-unknown-fields")
    out = {}
    for key, sub in value.items():
        sub_path = _join(path, key)
        if props and key in props:
            out[key] = _walk(sub, props[key], sub_path, unknown, errors)
        elif isinstance(addl, dict):
            out[key] = _walk(sub, addl, sub_path, unknown, errors)
        elif addl is True or preserve:
            out[key] = sub
        else:
            unknown.append(sub_path)
    for key, sub_schema in (props or {}).items():
        if key not in out and isinstance(sub_schema, dict) and "default" in sub_schema:
            out[key] = _walk(copy.deepcopy(sub_schema["default"]), sub_schema,
                             _join(path, key), [], errors)
    for req in schema.get("required") or []:
        if req not in out:
            errors.append((_join(path, req), "FieldValueRequired", "Required value"))
    if "minProperties" in schema and len(out) < schema["minProperties"]:
        errors.append((path, "FieldValueInvalid",
                       f"Invalid value: {len(out)}: {path} in body should have at least "
                       f"{schema['minProperties']} properties"))
    if "maxProperties" in schema and len(out) > schema["maxProperties"]:
        errors.append((path, "FieldValueTooMany",
                       f"Too many: {len(out)}: must have at most {schema['maxProperties']} items"))
    return out


def _check_scalar(value, schema, path, errors):
    if "enum" in schema and value not in schema["enum"]:
        allowed = ", ".join(_show(v) for v in schema["enum"])
        errors.append((path, "FieldValueNotSupported",
                       f"Unsupported value: {_show(value)}: supported values: {allowed}"))
    if isinstance(value, str):
        if "pattern" in schema:
            try:
                if not re.search(schema["pattern"], value):
                    errors.append((path, "FieldValueInvalid",
                                   f"Invalid value: {_show(value)}: {path} in body should match "
                                   f"'{schema['pattern']}'"))
            except re.error:
                pass
        if "minLength" in schema and len(value) < schema["minLength"]:
            errors.append((path, "FieldValueInvalid",
                           f"Invalid value: {_show(value)}: {path} in body should be at least "
                           f"{schema['minLength']} chars long"))
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            errors.append((path, "FieldValueTooLong",
                           f"Too long: may not be more than {schema['maxLength']} bytes"))
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        lo, hi = schema.get("minimum"), schema.get("maximum")
        if lo is not None and (value < lo or (schema.get("exclusiveMinimum") and value == lo)):
            errors.append((path, "FieldValueInvalid",
                           f"Invalid value: {value}: {path} in body should be greater than or "
                           f"equal to {lo}"))
        if hi is not None and (value > hi or (schema.get("exclusiveMaximum") and value == hi)):
            errors.append((path, "FieldValueInvalid",
                           f"Invalid value: {value}: {path} in body should be less than or "
                           f"equal to {hi}"))
