"""The server API's OpenAPI 3.1 document, derived from the op table and its pydantic models.

Pure: built once per node from `ops.OPS`, so a new op is documented the moment it is a row of
the table. Served at /api/v1/openapi.json; the interactive page (/api/v1/docs) reads it.
"""

from __future__ import annotations

import inspect
from typing import Any

from pydantic import BaseModel, TypeAdapter, ValidationError
from pydantic.json_schema import models_json_schema

from roomhub.protocol import limits, models, ops
from roomhub.protocol.errors import HTTP_STATUS, ErrorCode

PREFIX = "/api/v1"
SCHEMAS = "#/components/schemas/{model}"
ERROR_SCHEMA = "ErrorReply"
# Statuses that come from the HTTP layer rather than from an error code of the table.
TOO_LARGE = 413


def op_path(name: str) -> str:
    return f"{PREFIX}/{name}"


# The one stream op served over HTTP: as Server-Sent Events (server/sse.py). Its stream's end
# is the unwatch, so room.unwatch is the WebSocket's only.
STREAMED = "room.watch"


def served_ops() -> list[ops.OpSpec]:
    """Every op of the table but auth, whose token travels in the Authorization header, and
    the stream ops other than room.watch."""
    return [
        spec
        for spec in ops.OPS.values()
        if spec.name != "auth" and (not spec.stream or spec.name == STREAMED)
    ]


def _error_statuses() -> dict[int, list[ErrorCode]]:
    by_status: dict[int, list[ErrorCode]] = {}
    for code, status in HTTP_STATUS.items():
        by_status.setdefault(status, []).append(code)
    return dict(sorted(by_status.items()))


def _error_components() -> dict[str, Any]:
    error = {
        "type": "object",
        "description": "The WebSocket's error object (docs/protocol.md §7).",
        "required": ["code", "reason", "message"],
        "properties": {
            "code": {"type": "integer", "enum": [int(code) for code in ErrorCode]},
            "reason": {"type": "string", "enum": [code.reason for code in ErrorCode]},
            "message": {"type": "string"},
            "field": {"type": "string", "description": "The argument at fault (100002)."},
            "retry_after_ms": {"type": "integer", "minimum": 0},
        },
        "additionalProperties": False,
    }
    return {
        "Error": error,
        ERROR_SCHEMA: {
            "type": "object",
            "required": ["error"],
            "properties": {"error": {"$ref": SCHEMAS.format(model="Error")}},
            "additionalProperties": False,
        },
    }


def _responses(spec: ops.OpSpec) -> dict[str, Any]:
    result: dict[str, Any] = {"$ref": SCHEMAS.format(model=spec.result.__name__)}
    if spec.mutating:  # reply "ack" answers an Ack instead
        result = {"anyOf": [result, {"$ref": SCHEMAS.format(model="Ack")}]}
    content = {
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["result"],
                "properties": {"result": result},
                "additionalProperties": False,
            }
        }
    }
    description = "The op's result, exactly the WebSocket's."
    if spec.stream:
        content = {"text/event-stream": {"schema": {"type": "string"}}}
        description = (
            "Server-Sent Events: `room` (the Room), then `system` (id: the seq) and `resync`, "
            "each event's data the WebSocket's event frame in JSON (docs/http.md)."
        )
    responses: dict[str, Any] = {"200": {"description": description, "content": content}}
    error_content = {"application/json": {"schema": {"$ref": SCHEMAS.format(model=ERROR_SCHEMA)}}}
    statuses = _error_statuses()
    statuses.setdefault(TOO_LARGE, [])
    for status, codes in sorted(statuses.items()):
        listed = ", ".join(f"{int(c)} {c.reason}" for c in codes) or "the body is too large"
        entry: dict[str, Any] = {"description": listed, "content": error_content}
        if status == HTTP_STATUS[ErrorCode.RATE_LIMITED]:
            entry["headers"] = {
                "Retry-After": {
                    "description": "Seconds until a retry may be admitted.",
                    "schema": {"type": "integer", "minimum": 1},
                }
            }
        responses[str(status)] = entry
    return responses


def _prop_names(reserved: frozenset[str] = frozenset()) -> dict[str, Any]:
    names: dict[str, Any] = {"pattern": f"^{limits.PROP_NAME_PATTERN.pattern}$"}
    if reserved:
        names["not"] = {"enum": sorted(reserved)}
    return names


def _checked_maps(schemas: dict[str, Any]) -> None:
    """What the models check in code, said in the schemas: member.update's properties (the
    built-in ones typed, custom names, the reserved Member fields) and room.update's custom
    names; and room.update needs name or custom. Custom values (at most PROP_VALUE_MAX_BYTES of
    canonical JSON, nesting at most MAX_NESTING) stay in the description: JSON Schema cannot
    say it."""
    values = (
        f"custom values: any JSON (null removes the prop) of at most "
        f"{limits.PROP_VALUE_MAX_BYTES} bytes as canonical JSON, nested at most "
        f"{limits.MAX_NESTING} levels"
    )
    update = schemas["MemberUpdateArgs"]["properties"]["properties"]
    update["propertyNames"] = _prop_names(models.RESERVED_NAMES)
    update["properties"] = {
        name: TypeAdapter(kind).json_schema() for name, kind in models.BUILTIN_PROPERTIES.items()
    }
    update["description"] = f"Built-in member fields and custom props; {values}."
    room = schemas.get("RoomUpdateArgs")
    if room is not None:
        custom = next(s for s in room["properties"]["custom"]["anyOf"] if s["type"] == "object")
        custom["propertyNames"] = _prop_names()
        custom["description"] = f"Room props; {values}."
        room["anyOf"] = [
            {"required": [field], "properties": {field: {"not": {"type": "null"}}}}
            for field in ("name", "custom")
        ]


def _body_required(spec: ops.OpSpec) -> bool:
    """Whether an empty body (= `{}`) is refused: the op has a required argument."""
    try:
        spec.args.model_validate({})
    except ValidationError:
        return True
    return False


def _operation(spec: ops.OpSpec) -> dict[str, Any]:
    doc = inspect.cleandoc(vars(spec.args).get("__doc__") or "")  # its own, not BaseModel's
    parameters = []
    if spec.mutating:
        parameters.append(
            {
                "name": "Idempotency-Key",
                "in": "header",
                "required": False,
                "description": "The op's idempotency_key: a retry with it is applied once.",
                "schema": {"type": "string", "pattern": "^[A-Za-z0-9_.:-]{1,64}$"},
            }
        )
    operation: dict[str, Any] = {
        "operationId": spec.name,
        "summary": spec.name + (" (server tokens only)" if spec.server_only else ""),
        "description": (
            f"`{spec.name}` of docs/protocol.md §5, with the same arguments and result. {doc}"
        ).strip(),
        "tags": [spec.name.split(".")[0]],
        "requestBody": {
            "required": _body_required(spec),
            "description": "The op's args (none: `{}` or an empty body).",
            "content": {
                "application/json": {"schema": {"$ref": SCHEMAS.format(model=spec.args.__name__)}}
            },
        },
        "responses": _responses(spec),
    }
    if parameters:
        operation["parameters"] = parameters
    return operation


def document(version: str) -> dict[str, Any]:
    """The OpenAPI 3.1 document of the server API."""
    served = served_ops()
    used: list[type[BaseModel]] = [models.Ack]
    for spec in served:
        used += [spec.args, spec.result]
    unique = list(dict.fromkeys(used))
    modes = [(m, "validation") for m in unique if m in {s.args for s in served}]
    modes += [(m, "serialization") for m in unique if (m, "validation") not in modes]
    _, defs = models_json_schema(modes, ref_template=SCHEMAS)
    schemas = {**defs.get("$defs", {}), **_error_components()}
    _checked_maps(schemas)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "roomhub server API",
            "version": version,
            "description": (
                "Every op of the roomhub protocol over HTTP: `POST /api/v1/{op}` with the op's "
                "args as JSON. Authenticate with the app key in `X-Roomhub-Key` and a token "
                "(a user's, or a server token) in `Authorization: Bearer`. See docs/http.md."
            ),
        },
        "paths": {op_path(spec.name): {"post": _operation(spec)} for spec in served},
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "token": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
                "appKey": {"type": "apiKey", "in": "header", "name": "X-Roomhub-Key"},
            },
        },
        "security": [{"token": [], "appKey": []}],
    }
