"""One error shape for the whole API: {"error": {"code", "message", "fields"}}."""

from django.core.exceptions import PermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.views import exception_handler as drf_exception_handler

CODES = {
    400: "invalid",
    401: "not_authenticated",
    403: "permission_denied",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    415: "unsupported_media_type",
    429: "rate_limited",
}


def _fields(detail) -> dict:
    if isinstance(detail, dict):
        return {
            key: [str(m) for m in (value if isinstance(value, list) else [value])]
            for key, value in detail.items()
        }
    return {}


def _message(detail, fallback: str) -> str:
    if isinstance(detail, dict):
        first = next(iter(detail.values()), fallback)
        first = first[0] if isinstance(first, list) and first else first
        return str(first) if detail else fallback
    if isinstance(detail, list):
        return str(detail[0]) if detail else fallback
    return str(detail)


def body(code: str, message: str, fields: dict | None = None) -> dict:
    return {"error": {"code": code, "message": message, "fields": fields or {}}}


def exception_handler(exc, context):
    """DRF's handler, then reshaped; a procedure's ValueError is the client's mistake (400)."""
    if isinstance(exc, DjangoValidationError):
        if hasattr(exc, "error_dict"):
            detail = exc.message_dict
        else:
            detail = {"non_field_errors": exc.messages}
        exc = exceptions.ValidationError(detail)
    elif isinstance(exc, ValueError):
        exc = exceptions.ValidationError({"non_field_errors": [str(exc)]})
    elif isinstance(exc, Http404):
        exc = exceptions.NotFound(str(exc) or "Not found.")
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied(str(exc) or None)
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    detail = response.data if not isinstance(exc, exceptions.APIException) else exc.detail
    code = CODES.get(response.status_code, "error")
    fields = _fields(detail) if response.status_code == status.HTTP_400_BAD_REQUEST else {}
    message = _message(detail, "The request is not valid.")
    if fields:
        only_general = list(fields) == ["non_field_errors"]
        message = fields["non_field_errors"][0] if only_general else "Some fields are not valid."
    response.data = body(code, message, fields)
    return response
