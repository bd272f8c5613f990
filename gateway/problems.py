"""RFC 9457 problem details: the one shape every error leaves the gateway in."""
from __future__ import annotations

import json

from aiohttp import web

PROBLEM_JSON = "application/problem+json"


class Problem(Exception):
    """Raise from anywhere in a request to answer with problem+json."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str | None = None,
        *,
        type: str = "about:blank",
        errors: dict[str, list[str]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail or title)
        self.status = status
        self.title = title
        self.detail = detail
        self.type = type
        self.errors = errors
        self.headers = headers or {}


class ValidationProblem(Problem):
    """422 with the fields at fault, as marshmallow reports them."""

    def __init__(self, errors: dict, detail: str = "The request has invalid fields.") -> None:
        super().__init__(422, "Unprocessable Content", detail, errors=flatten_errors(errors))


def flatten_errors(errors: dict, prefix: str = "") -> dict[str, list[str]]:
    """marshmallow nests errors for nested fields; clients get `a.b` paths mapped to messages."""
    flat: dict[str, list[str]] = {}
    for key, value in errors.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten_errors(value, f"{path}."))
        else:
            flat[path] = [str(message) for message in value] if isinstance(value, list) else [str(value)]
    return flat


def problem_response(problem: Problem, request_id: str) -> web.Response:
    body = {
        "type": problem.type,
        "title": problem.title,
        "status": problem.status,
        "detail": problem.detail or problem.title,
        "request_id": request_id,
    }
    if problem.errors:
        body["errors"] = problem.errors
    response = web.Response(
        status=problem.status,
        body=json.dumps(body).encode(),
        content_type=PROBLEM_JSON,
        headers=problem.headers,
    )
    return response


def from_http_exception(exc: web.HTTPException) -> Problem:
    """aiohttp's own 404/405/413... become problems with the same status and headers."""
    headers = {k: v for k, v in exc.headers.items() if k.lower() in ("allow", "www-authenticate", "retry-after")}
    detail = exc.text if exc.text and not exc.text.startswith(f"{exc.status}:") else None
    return Problem(exc.status, exc.reason, detail, headers=headers)
