"""The OpenAPI 3.1 document, built with apispec from the routes' own marshmallow schemas."""
from __future__ import annotations

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from marshmallow import Schema, fields

from gateway.plugin import Registry

PROBLEM = "Problem"


class ProblemSchema(Schema):
    type = fields.Str(required=True)
    title = fields.Str(required=True)
    status = fields.Int(required=True)
    detail = fields.Str(required=True)
    request_id = fields.Str(required=True)
    errors = fields.Dict(keys=fields.Str(), values=fields.List(fields.Str()))


def schema_name(resolver_schema) -> str:
    cls = resolver_schema if isinstance(resolver_schema, type) else type(resolver_schema)
    name = cls.__name__
    return name[: -len("Schema")] if name.endswith("Schema") and name != "Schema" else name


def operation_id(method: str, path: str) -> str:
    """`POST /v1/media/{id}/complete` -> `post_v1_media_id_complete`: stable and unique per route."""
    words = [segment.strip("{}").split(":")[0] for segment in path.split("/") if segment]
    return "_".join([method.lower(), *words]).replace("-", "_").replace(".", "_")


def build(registry: Registry, title: str = "Mobile gateway", version: str = "0.1.0") -> dict:
    spec = APISpec(
        title=title,
        version=version,
        openapi_version="3.1.0",
        plugins=[MarshmallowPlugin(schema_name_resolver=schema_name)],
    )
    spec.components.schema(PROBLEM, schema=ProblemSchema)
    for name, scheme in registry.security_schemes.items():
        spec.components.security_scheme(name, scheme)
    problem = {"$ref": f"#/components/schemas/{PROBLEM}"}

    paths: dict[str, dict] = {}
    for route in registry.routes:
        if not route.documented:
            continue
        operation: dict = {
            "summary": route.summary,
            "operationId": operation_id(route.method, route.path),
            "tags": list(route.tags or (route.plugin,)),
            "responses": {},
        }
        if route.query is not None:
            operation["parameters"] = [{"in": "query", "schema": route.query}]
        if route.body is not None:
            operation["requestBody"] = {"required": True, "content": {"application/json": {"schema": route.body}}}
        for status, body in route.responses.items():
            if isinstance(body, str):
                operation["responses"][str(status)] = {"description": body}
            else:
                operation["responses"][str(status)] = {
                    "description": body.__doc__.strip().splitlines()[0] if body.__doc__ else "OK",
                    "content": {"application/json": {"schema": body}},
                }
        default_errors = {"default": "Error (problem details)"}
        if not route.public and registry.security_schemes:
            operation["security"] = [{name: list(route.scopes)} for name in registry.security_schemes]
            default_errors["401"] = "Missing or invalid credentials"
        if route.body is not None or route.query is not None:
            default_errors["422"] = "Invalid input; `errors` names each field"
        for status, description in default_errors.items():
            operation["responses"].setdefault(
                status, {"description": description, "content": {"application/problem+json": {"schema": problem}}}
            )
        parameters = [segment[1:-1].split(":")[0] for segment in route.path.split("/") if segment.startswith("{")]
        if parameters:
            operation.setdefault("parameters", [])
            operation["parameters"] = [
                {"name": name, "in": "path", "required": True, "schema": {"type": "string"}} for name in parameters
            ] + operation["parameters"]
        paths.setdefault(route.path, {})[route.method.lower()] = operation
    for path, operations in paths.items():
        spec.path(path=path, operations=operations)
    return spec.to_dict()
