"""Label selectors and field selectors, as the Kubernetes API parses them.

Label selector grammar (comma = AND):
  ``k=v``, ``k==v``, ``k!=v``, ``k in (a,b)``, ``k notin (a,b)``, ``k`` (exists),
  ``!k`` (does not exist), ``k>N``, ``k<N`` (integer comparison).
Field selectors: ``path=v``, ``path==v``, ``path!=v`` where path is a dotted
field path (``metadata.name``, ``metadata.namespace``, ``spec.type``, ...).
The real apiserver allows only a per-kind set of field paths; this server
accepts any dotted path (documented leniency).
"""

import re

from .errors import bad_request

_KEY = r"[A-Za-z0-9](?:[-A-Za-z0-9_./]*[A-Za-z0-9])?"


def _split_top(text):
    """Split on commas that are not inside parentheses."""
    parts, depth, cur = [], 0, []
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return [p.strip() for p in parts if p.strip()]


def parse_label_selector(text):
    """Parse a label selector string into a list of (key, op, values) requirements.

    Raises ApiError(400) on syntax errors, like the real apiserver.
    """
    reqs = []
    if not text:
        return reqs
    for part in _split_top(text):
        m = re.fullmatch(rf"({_KEY})\s+(in|notin)\s+\((.*)\)", part)
        if m:
            vals = {v.strip() for v in m.group(3).split(",") if v.strip() != ""}
            reqs.append((m.group(1), m.group(2), vals))
            continue
        m = re.fullmatch(rf"({_KEY})\s*(==|=|!=|>|<)\s*([-A-Za-z0-9_.]*)", part)
        if m:
            op = {"==": "=", "=": "="}.get(m.group(2), m.group(2))
            reqs.append((m.group(1), op, {m.group(3)}))
            continue
        m = re.fullmatch(rf"!\s*({_KEY})", part)
        if m:
            reqs.append((m.group(1), "!", set()))
            continue
        m = re.fullmatch(rf"({_KEY})", part)
        if m:
            reqs.append((m.group(1), "exists", set()))
            continue
        raise bad_request(f'unable to parse requirement: invalid label selector "{text}"')
    return reqs


def match_labels(reqs, labels):
    """True if the label map satisfies every requirement."""
    labels = labels or {}
    for key, op, vals in reqs:
        present = key in labels
        val = labels.get(key)
        if op == "=" and not (present and val in vals):
            return False
        if op == "!=" and present and val in vals:
            return False
        if op == "in" and not (present and val in vals):
            return False
        if op == "notin" and present and val in vals:
            return False
        if op == "exists" and not present:
            return False
        if op == "!" and present:
            return False
        if op in (">", "<"):
            try:
                lhs, rhs = int(val), int(next(iter(vals)))
            except (TypeError, ValueError, StopIteration):
                return False
            if (op == ">" and not lhs > rhs) or (op == "<" and not lhs < rhs):
                return False
    return True


def selector_from_match_labels(match):
    """Requirements equivalent to a ``matchLabels`` map."""
    return [(k, "=", {v}) for k, v in (match or {}).items()]


def parse_field_selector(text):
    """Parse a field selector into a list of (path, op, value); op is '=' or '!='."""
    reqs = []
    if not text:
        return reqs
    for part in _split_top(text):
        m = re.fullmatch(r"([A-Za-z0-9_.\-/]+)\s*(==|=|!=)\s*(.*)", part)
        if not m:
            raise bad_request(f'invalid field selector: "{part}"')
        op = "!=" if m.group(2) == "!=" else "="
        value = m.group(3).replace("\\,", ",").replace("\\=", "=").replace("\\\\", "\\")
        reqs.append((m.group(1), op, value))
    return reqs


def _field_value(obj, path):
    cur = obj
    for seg in path.split("."):
        if not isinstance(cur, dict):
            return ""
        cur = cur.get(seg)
    if cur is None:
        return ""
    if isinstance(cur, bool):
        return "true" if cur else "false"
    return str(cur)


def match_fields(reqs, obj):
    """True if the object satisfies every field requirement."""
    for path, op, value in reqs:
        actual = _field_value(obj, path)
        if (op == "=") != (actual == value):
            return False
    return True
