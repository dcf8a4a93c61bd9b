"""Kubernetes API errors and the ``Status`` objects that carry them."""


class ApiError(Exception):
    """An error the API returns to the client as a ``Status`` object.

    ``reason`` is a Kubernetes StatusReason (NotFound, AlreadyExists, Conflict,
    Invalid, BadRequest, Expired, ...); ``details`` is the optional
    ``status.details`` map (name, group, kind, causes).
    """

    def __init__(self, code, reason, message, details=None, headers=None):
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details
        self.headers = headers or {}

    def to_status(self):
        return status_object(self.code, self.reason, self.message, self.details)


def status_object(code, reason, message, details=None):
    """A ``v1 Status`` failure object (``status: Failure``)."""
    st = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    if details:
        st["details"] = details
    return st


def success_status(details=None):
    st = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}
    if details:
        st["details"] = details
    return st


def _qualified(resource, group):
    return f"{resource}.{group}" if group else resource


def not_found(resource, group, name):
    return ApiError(404, "NotFound", f'{_qualified(resource, group)} "{name}" not found',
                    {"name": name, "group": group, "kind": resource})


def already_exists(resource, group, name):
    return ApiError(409, "AlreadyExists", f'{_qualified(resource, group)} "{name}" already exists',
                    {"name": name, "group": group, "kind": resource})


def conflict(resource, group, name, why="the object has been modified; please apply your "
             "changes to the latest version and try again"):
    return ApiError(409, "Conflict",
                    f'Operation cannot be fulfilled on {_qualified(resource, group)} "{name}": {why}',
                    {"name": name, "group": group, "kind": resource})


def invalid(kind, group, name, causes):
    """422 Invalid; ``causes`` is a list of (field, reason, message)."""
    gk = f"{kind}.{group}" if group else kind
    text = "; ".join(f"{f}: {m}" if f else m for f, _, m in causes)
    if len(causes) > 1:
        text = "[" + ", ".join(f"{f}: {m}" if f else m for f, _, m in causes) + "]"
    return ApiError(422, "Invalid", f'{gk} "{name}" is invalid: {text}', {
        "name": name, "group": group, "kind": kind,
        "causes": [{"reason": r, "message": m, "field": f} for f, r, m in causes],
    })


def bad_request(message):
    return ApiError(400, "BadRequest", message)


def expired(message):
    return ApiError(410, "Expired", message)


def method_not_allowed(message="the server does not allow this method on the requested resource"):
    return ApiError(405, "MethodNotAllowed", message)
