"""Validation of requests and responses against the FirecREST v2 OpenAPI document.

The double validates every request it receives and every response it is about to
send against ``openapi/firecrest-v2.5.6.json`` (a copy of the API's published
document, API version 2.5.6). Schemas are OpenAPI 3.1, i.e. JSON Schema 2020-12, and
are checked with :mod:`jsonschema` against the document's own ``components``.

Two deliberate accommodations mirror what the real (FastAPI/pydantic) server does
and are documented where they are applied:

* request bodies may use a property's snake_case name instead of its camelCase name
  (pydantic ``populate_by_name``); pyfirecrest 3.10 sends ``job.working_directory``.
* query and path parameters arrive as strings and are coerced by their schema type
  (``"true"``/``"false"`` for booleans, integers) before validation, as FastAPI does.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import jsonschema
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

SPEC_PATH = Path(__file__).with_name("openapi") / "firecrest-v2.5.6.json"
_SPEC_URI = "urn:firecrest-v2-openapi"
_CAMEL = re.compile(r"_([a-z0-9])")


@dataclass(frozen=True)
class Operation:
    """One (method, path template) of the document."""

    method: str
    template: str
    spec: Mapping[str, Any]

    @property
    def route(self) -> str:
        """``"GET /compute/{system_name}/jobs"``: the key used by counters and faults."""
        return f"{self.method} {self.template}"

    @property
    def secured(self) -> bool:
        """True when the operation requires a bearer token."""
        return bool(self.spec.get("security"))


@dataclass
class Violation:
    """A request or response that does not conform to the OpenAPI document."""

    kind: str  # "request" or "response"
    route: str
    status: int | None
    errors: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        where = f"{self.kind} {self.route}" + (f" -> {self.status}" if self.status else "")
        return f"{where}: " + "; ".join(self.errors)


class ResponseViolation(AssertionError):
    """Raised when the double itself would send a response that violates the spec."""


def _to_camel(name: str) -> str:
    return _CAMEL.sub(lambda m: m.group(1).upper(), name)


class OpenAPISpec:
    """The loaded OpenAPI document with route matching and validators."""

    def __init__(self, path: Path | str = SPEC_PATH) -> None:
        self.path = Path(path)
        with self.path.open(encoding="utf-8") as f:
            self.document: dict[str, Any] = json.load(f)
        self.version: str = self.document["info"]["version"]
        resource = Resource(contents=self.document, specification=DRAFT202012)
        self._registry: Registry = Registry().with_resource(_SPEC_URI, resource)
        self._routes: list[tuple[re.Pattern[str], str, dict[str, Any]]] = []
        for template, item in self.document["paths"].items():
            pattern = "^" + re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(template)) + "$"
            self._routes.append((re.compile(pattern), template, item))
        # Literal templates first, so /status/systems never matches /status/{system_name}/...
        self._routes.sort(key=lambda r: r[1].count("{"))
        self._validators: dict[str, jsonschema.protocols.Validator] = {}
        self._shape_only: dict[str, bool] = {}

    # -- lookup ----------------------------------------------------------------------
    def match(self, method: str, path: str) -> tuple[Operation, dict[str, str]] | None:
        """The operation for ``method path`` and its raw path parameters, or None."""
        method = method.lower()
        for regex, template, item in self._routes:
            m = regex.match(path)
            if m and method in item:
                return Operation(method.upper(), template, item[method]), m.groupdict()
        return None

    def path_exists(self, path: str) -> bool:
        """True when some method is documented for ``path`` (405 instead of 404)."""
        return any(regex.match(path) for regex, _, _ in self._routes)

    # -- schemas ---------------------------------------------------------------------
    def _resolve(self, schema: Mapping[str, Any]) -> Mapping[str, Any]:
        while "$ref" in schema:
            pointer = schema["$ref"].lstrip("#/").split("/")
            node: Any = self.document
            for part in pointer:
                node = node[part]
            schema = node
        return schema

    def validator(self, schema: Mapping[str, Any]) -> jsonschema.protocols.Validator:
        """A cached Draft 2020-12 validator for ``schema`` (refs resolve in the document)."""
        key = json.dumps(schema, sort_keys=True)
        v = self._validators.get(key)
        if v is None:
            wrapped = _rebase_refs(schema)
            v = jsonschema.Draft202012Validator(wrapped, registry=self._registry)
            self._validators[key] = v
        return v

    def schema_errors(self, schema: Mapping[str, Any], value: Any, where: str) -> list[str]:
        """Messages for every way ``value`` violates ``schema``; empty when valid."""
        out = []
        for err in self.validator(schema).iter_errors(value):
            for leaf in _deepest(err):
                loc = "/".join(str(p) for p in leaf.absolute_path)
                out.append(f"{where}{'/' + loc if loc else ''}: {leaf.message}")
        return out

    # -- requests --------------------------------------------------------------------
    def coerce_param(self, schema: Mapping[str, Any], raw: str) -> Any:
        """Coerce a path/query string by its schema type, as FastAPI does."""
        types = _types_of(self._resolve(schema), self)
        if "boolean" in types:
            low = raw.lower()
            if low in ("true", "1", "yes", "on"):
                return True
            if low in ("false", "0", "no", "off"):
                return False
        if "integer" in types:
            try:
                return int(raw)
            except ValueError:
                pass
        if "null" in types and raw == "" and "string" not in types:
            return None
        return raw

    def validate_request(
        self,
        op: Operation,
        path_params: Mapping[str, str],
        query: Mapping[str, str],
        content_type: str,
        body: bytes,
        form_fields: set[str] | None = None,
    ) -> tuple[list[str], dict[str, Any], Any]:
        """Validate a request: returns (errors, coerced parameters, parsed JSON body)."""
        errors: list[str] = []
        params: dict[str, Any] = {}
        for p in op.spec.get("parameters", []):
            name, where, schema = p["name"], p["in"], p.get("schema", {})
            source = path_params if where == "path" else query if where == "query" else None
            if source is None:
                continue
            if name not in source:
                if p.get("required"):
                    errors.append(f"{where} parameter {name!r}: required")
                elif "default" in schema:
                    params[name] = schema["default"]
                continue
            value = self.coerce_param(schema, source[name])
            errors += self.schema_errors(schema, value, f"{where} parameter {name!r}")
            params[name] = value
        parsed: Any = None
        rb = op.spec.get("requestBody")
        if rb is not None:
            media = content_type.split(";")[0].strip().lower()
            content = rb.get("content", {})
            if not body and not form_fields:
                if rb.get("required"):
                    errors.append("request body: required")
            elif media not in content:
                errors.append(f"request body: content type {media!r} not in {sorted(content)}")
            elif media == "application/json":
                try:
                    parsed = json.loads(body)
                except ValueError as e:
                    errors.append(f"request body: not JSON ({e})")
                else:
                    schema = content[media]["schema"]
                    parsed = self.normalise_names(schema, parsed)
                    errors += self.schema_errors(schema, parsed, "request body")
            elif media == "multipart/form-data":
                schema = self._resolve(content[media]["schema"])
                for req in schema.get("required", []):
                    if req not in (form_fields or set()):
                        errors.append(f"request body: multipart field {req!r} required")
        return errors, params, parsed

    def normalise_names(self, schema: Mapping[str, Any], value: Any) -> Any:
        """Rename snake_case keys to the schema's camelCase property names (pydantic
        ``populate_by_name``), recursively through object schemas."""
        schema = self._resolve(schema)
        if isinstance(value, dict):
            props: Mapping[str, Any] = schema.get("properties", {})
            out = {}
            for k, v in value.items():
                camel = _to_camel(k)
                name = k if k in props or camel not in props else camel
                sub = props.get(name)
                out[name] = self.normalise_names(sub, v) if sub is not None else v
            return out
        return value

    # -- responses -------------------------------------------------------------------
    def validate_response(
        self, op: Operation, status: int, content_type: str | None, body: bytes
    ) -> list[str]:
        """Validate a response the double is about to send."""
        responses = op.spec.get("responses", {})
        spec = responses.get(str(status)) or responses.get(f"{status // 100}XX")
        spec = spec or responses.get("default")
        if spec is None:
            return [f"status {status} is not documented (documented: {sorted(responses)})"]
        content = spec.get("content")
        if not content:
            return [f"status {status} has no body in the spec, got {len(body)} bytes"] if body else []
        media = (content_type or "").split(";")[0].strip().lower()
        if media not in content:
            return [f"content type {media!r} not in {sorted(content)}"]
        try:
            value = json.loads(body)
        except ValueError as e:
            return [f"body is not JSON ({e})"]
        schema = content[media]["schema"]
        return self.schema_errors(schema, self.representatives(schema, value), "response body")

    def representatives(self, schema: Mapping[str, Any], value: Any) -> Any:
        """``value`` with each long list of its top-level object cut to one item per
        distinct shape (keys and JSON types, recursively), when ``schema`` constrains
        only shapes (no enum, pattern, bounds...): then the items left are valid exactly
        when all were. A listing of 2000 jobs (~1.4 MB) validates in milliseconds
        instead of seconds; the error paths then index the items kept."""
        if not isinstance(value, dict) or not self.shape_only(schema):
            return value
        out = dict(value)
        for key, items in value.items():
            if isinstance(items, list) and len(items) > _DEDUP_MIN:
                kept: dict[Any, Any] = {}
                for item in items:
                    kept.setdefault(_shape(item), item)
                out[key] = list(kept.values())
        return out

    def shape_only(self, schema: Mapping[str, Any]) -> bool:
        """True when ``schema`` (refs followed) uses no keyword that looks at values
        beyond their JSON type and object keys."""
        key = json.dumps(schema, sort_keys=True)
        cached = self._shape_only.get(key)
        if cached is None:
            cached = self._shape_only[key] = self._no_value_keywords(schema, set())
        return cached

    def _no_value_keywords(self, node: Any, seen: set[str]) -> bool:
        if isinstance(node, list):
            return all(self._no_value_keywords(n, seen) for n in node)
        if not isinstance(node, dict):
            return True
        ref = node.get("$ref")
        if isinstance(ref, str):
            if ref in seen:
                return True
            seen.add(ref)
            if not self._no_value_keywords(self._resolve(node), seen):
                return False
        if _VALUE_KEYWORDS & node.keys():
            return False
        return all(self._no_value_keywords(v, seen) for k, v in node.items()
                   if k in ("properties",) or isinstance(v, (dict, list)))


#: Lists longer than this are validated one item per distinct shape (see representatives).
_DEDUP_MIN = 20
#: Keywords whose verdict depends on more than a value's type and keys.
_VALUE_KEYWORDS = frozenset({
    "enum", "const", "pattern", "format", "minimum", "maximum", "exclusiveMinimum",
    "exclusiveMaximum", "multipleOf", "minLength", "maxLength", "minItems", "maxItems",
    "uniqueItems", "contains", "minContains", "maxContains", "minProperties",
    "maxProperties", "propertyNames", "patternProperties", "dependentRequired",
    "dependentSchemas", "if", "not", "prefixItems", "unevaluatedItems",
    "unevaluatedProperties",
})


def _shape(value: Any) -> Any:
    """A hashable picture of a JSON value's keys and types (not its values)."""
    if isinstance(value, dict):
        return ("object", tuple(sorted((k, _shape(v)) for k, v in value.items())))
    if isinstance(value, list):
        return ("array", frozenset(_shape(v) for v in value))
    if value is None or isinstance(value, bool):
        return repr(value) if value is None else "boolean"
    return type(value).__name__


def _deepest(err: jsonschema.ValidationError) -> list[jsonschema.ValidationError]:
    """For anyOf/oneOf failures, the errors of the branch that got furthest into the
    value (e.g. ``jobs/0/jobId`` rather than "not null"); otherwise the error itself."""
    if not err.context:
        return [err]
    leaves = [leaf for sub in err.context for leaf in _deepest(sub)]
    depth = max(len(leaf.absolute_path) for leaf in leaves)
    if depth <= len(err.absolute_path):
        return [err]
    return [leaf for leaf in leaves if len(leaf.absolute_path) == depth]


def _types_of(schema: Mapping[str, Any], spec: OpenAPISpec) -> set[str]:
    t = schema.get("type")
    types = set(t if isinstance(t, list) else [t] if t else [])
    for alt in schema.get("anyOf", []) + schema.get("oneOf", []):
        types |= _types_of(spec._resolve(alt), spec)
    return types


def _rebase_refs(node: Any) -> Any:
    """Point local ``#/components/...`` refs at the registered document."""
    if isinstance(node, dict):
        return {
            k: (_SPEC_URI + v if k == "$ref" and isinstance(v, str) and v.startswith("#") else
                _rebase_refs(v))
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_rebase_refs(v) for v in node]
    return node


@lru_cache(maxsize=4)
def load_spec(path: str = str(SPEC_PATH)) -> OpenAPISpec:
    """The parsed document, shared by every double in the process (it is read-only)."""
    return OpenAPISpec(path)
