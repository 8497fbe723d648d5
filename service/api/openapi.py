"""Request validation against ``openapi.yaml``: the contract is the validator.

Schemas are compiled once at start-up (jsonschema, Draft 2020-12, which OpenAPI 3.1 uses), so a
request costs a dictionary look-up and the validation itself.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import sys
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker, ValidationError, validators
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from service.api.bodies import parse_json
from service.domain.text import display_name_problem
from service.errors import UnsupportedMediaType, ValidationFailed

log = logging.getLogger(__name__)

SPEC_URI = "urn:amlcp:openapi"
_METHODS = ("get", "put", "post", "patch", "delete")


@dataclass(frozen=True)
class Parameter:
    name: str
    location: str  # path | query | header
    required: bool
    schema_type: str | None
    validator: Draft202012Validator
    default: Any = None


@dataclass(frozen=True)
class Operation:
    operation_id: str
    parameters: tuple[Parameter, ...]
    body_required: bool
    body_validators: Mapping[str, Draft202012Validator]  # media type -> validator


@dataclass
class ValidatedRequest:
    """What a view may use: typed parameters and the parsed, schema-valid body."""

    path: dict[str, Any] = field(default_factory=dict)
    query: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, Any] = field(default_factory=dict)
    body: Any = None


def whole_value_pattern(pattern: str) -> str:
    """``pattern`` with every end anchor ``$`` (outside a character class) made ``\\Z``.

    Patterns in the contract are ECMA-262, where ``$`` matches only at the very end. In Python
    ``$`` also matches before a trailing newline, so ``^[a-z]+$`` accepted ``"contoso\\n"``.
    """
    out: list[str] = []
    in_class = escaped = False
    for ch in pattern:
        if escaped:
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == "[" and not in_class:
            in_class = True
        elif ch == "]" and in_class:
            in_class = False
        elif ch == "$" and not in_class:
            out.append("\\Z")
            continue
        out.append(ch)
    return "".join(out)


@cache
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(whole_value_pattern(pattern))


def _pattern(
    validator: Any, pattern: str, instance: Any, schema: Mapping[str, Any]
) -> Iterator[ValidationError]:
    if validator.is_type(instance, "string") and not _compiled(pattern).search(instance):
        yield ValidationError(f"does not match {pattern!r}")


_FORMATS = FormatChecker()
for _name, _check in Draft202012Validator.FORMAT_CHECKER.checkers.items():
    _FORMATS.checks(_name, _check[1])(_check[0])


@_FORMATS.checks("display-name")
def _display_name(value: object) -> bool:
    return not isinstance(value, str) or display_name_problem(value) is None


# Draft 2020-12 with whole-value patterns (see whole_value_pattern).
ContractValidator = validators.extend(  # type: ignore[no-untyped-call]
    Draft202012Validator, {"pattern": _pattern}
)


def load_document(path: Path, text: str) -> dict[str, Any]:
    """The contract ``text`` (read from ``path``) as data.

    Parsing the 100 KB of YAML cost every gunicorn worker ~0.1 s of CPU at start (libyaml
    parses, but PyYAML builds the objects in Python) plus ~30 ms to import PyYAML: an eighth of a
    worker's boot, so of ``/readyz`` (issue 16). The parsed document is kept as JSON beside the
    file, as Python keeps bytecode: ``__pycache__/openapi.yaml.<SHA-256 of the text>.json``,
    which ``json`` reads in ~1 ms. The name is the digest of the very text served at
    ``/openapi.yaml``, so an edited contract never meets an old copy. The copy is written on a
    miss when the directory is writable (``make bytecode`` and the image build write it ahead);
    otherwise every start parses the YAML as before. A document JSON cannot hold exactly (a
    YAML date, a number as a key) is never cached.
    """
    cached = cached_copy(path, text)
    with contextlib.suppress(OSError, ValueError):
        document = json.loads(cached.read_text(encoding="utf-8"))
        if isinstance(document, dict) and "paths" in document:
            return document
    import yaml  # only on a miss: ~30 ms of import

    # libyaml's parser when PyYAML has it (the same safe loader, in C).
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    parsed: dict[str, Any] = yaml.load(text, Loader=loader)  # noqa: S506 - a safe loader
    _write_copy(cached, parsed, older=f"{path.name}.*.json")
    return parsed


def cached_copy(path: Path, text: str) -> Path:
    """Where the parsed copy of the contract ``text`` read from ``path`` is kept."""
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    return path.parent / "__pycache__" / f"{path.name}.{digest}.json"


def _write_copy(cached: Path, document: Any, *, older: str) -> None:
    """Keep ``document`` as JSON at ``cached`` (atomically; the copies of other versions, the
    ``older`` glob, removed) if JSON keeps it exactly; a read-only installation goes without."""
    try:
        encoded = json.dumps(document, ensure_ascii=False, separators=(",", ":"))
        if json.loads(encoded) != document:
            log.info("the contract holds values JSON cannot keep exactly: not cached")
            return
        cached.parent.mkdir(exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=cached.parent, prefix=".contract-", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write(encoded)
            os.chmod(temporary, 0o644)  # the contract is public; workers may run as another user
            os.replace(temporary, cached)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise
        for other in cached.parent.glob(older):
            if other != cached:
                with contextlib.suppress(OSError):
                    other.unlink()
    except (OSError, TypeError, ValueError) as exc:
        log.debug("could not keep the parsed contract at %s: %s", cached, exc)


def _pointer(*parts: str) -> str:
    return "/".join(p.replace("~", "~0").replace("/", "~1") for p in parts)


class OpenApiContract:
    """The loaded document plus compiled validators for every operation."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.text = path.read_text(encoding="utf-8")
        self.document: dict[str, Any] = load_document(path, self.text)
        self._registry: Registry[Any] = Registry().with_resource(
            SPEC_URI, Resource.from_contents(self.document, default_specification=DRAFT202012)
        )
        self.operations: dict[tuple[str, str], Operation] = {}
        for template, item in self.document["paths"].items():
            shared = item.get("parameters", [])
            for method in _METHODS:
                if method in item:
                    self.operations[(template, method)] = self._compile(
                        template, method, item[method], shared
                    )

    def _deref(self, obj: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
        ref = obj.get("$ref")
        if ref is None:
            return obj, None
        target: Any = self.document
        for part in ref.removeprefix("#/").split("/"):
            target = target[part.replace("~1", "/").replace("~0", "~")]
        return target, ref.removeprefix("#")

    def _validator(self, pointer: str) -> Draft202012Validator:
        validator: Draft202012Validator = ContractValidator(
            {"$ref": f"{SPEC_URI}#{pointer}"}, registry=self._registry, format_checker=_FORMATS
        )
        return validator

    def _compile(
        self, template: str, method: str, op: dict[str, Any], shared: list[dict[str, Any]]
    ) -> Operation:
        params: dict[tuple[str, str], Parameter] = {}
        for index, raw in enumerate([*shared, *op.get("parameters", [])]):
            param, ref = self._deref(raw)
            if ref is not None:
                schema_ptr = f"{ref}/schema"
            elif index < len(shared):
                schema_ptr = "/" + _pointer("paths", template, "parameters", str(index), "schema")
            else:
                local = index - len(shared)
                schema_ptr = "/" + _pointer(
                    "paths", template, method, "parameters", str(local), "schema"
                )
            schema, _ = self._deref(param["schema"])
            params[(param["in"], param["name"])] = Parameter(
                name=param["name"],
                location=param["in"],
                required=bool(param.get("required", False)),
                schema_type=schema.get("type") if isinstance(schema.get("type"), str) else None,
                validator=self._validator(schema_ptr),
                default=schema.get("default"),
            )
        validators: dict[str, Draft202012Validator] = {}
        body = op.get("requestBody")
        if body is not None:
            for media in body["content"]:
                validators[media] = self._validator(
                    "/"
                    + _pointer("paths", template, method, "requestBody", "content", media, "schema")
                )
        return Operation(
            operation_id=op["operationId"],
            parameters=tuple(params.values()),
            body_required=bool(body and body.get("required")),
            body_validators=validators,
        )

    def validate(
        self,
        template: str,
        method: str,
        *,
        path_args: Mapping[str, str],
        query: Mapping[str, list[str]],
        headers: Mapping[str, str],
        content_type: str | None,
        body: bytes,
    ) -> ValidatedRequest:
        """Validate one request; raise ValidationFailed (400) or UnsupportedMediaType (415)."""
        op = self.operations.get((template, method.lower()))
        if op is None:
            return ValidatedRequest(path=dict(path_args))
        out = ValidatedRequest()
        errors: list[dict[str, str]] = []
        known_query = {p.name for p in op.parameters if p.location == "query"}
        for name in query:
            if name not in known_query:
                errors.append({"field": f"query.{name}", "message": "unknown query parameter"})
        for p in op.parameters:
            where = f"{p.location}.{p.name}"
            raw: str | None
            if p.location == "path":
                raw = path_args.get(p.name)
            elif p.location == "query":
                values = query.get(p.name, [])
                if len(values) > 1:
                    errors.append({"field": where, "message": "given more than once"})
                    continue
                raw = values[0] if values else None
            else:
                raw = headers.get(p.name)
            if raw is None:
                if p.required:
                    errors.append({"field": where, "message": "is required"})
                elif p.default is not None:
                    getattr(out, p.location if p.location != "header" else "headers")[p.name] = (
                        p.default
                    )
                continue
            value, problem = _coerce(raw, p.schema_type)
            if problem is None:
                problem = _first_error(p.validator, value)
            if problem is not None:
                errors.append({"field": where, "message": problem})
                continue
            getattr(out, p.location if p.location != "header" else "headers")[p.name] = value
        if op.body_validators:
            out.body = self._body(op, content_type, body, errors)
        if errors:
            raise ValidationFailed(_summary(errors), errors)
        return out

    def _body(
        self, op: Operation, content_type: str | None, body: bytes, errors: list[dict[str, str]]
    ) -> Any:
        if not body:
            if op.body_required:
                errors.append({"field": "body", "message": "a JSON body is required"})
            return None
        media = (content_type or "").split(";", 1)[0].strip().lower()
        validator = op.body_validators.get(media)
        if validator is None:
            accepted = ", ".join(op.body_validators)
            raise UnsupportedMediaType(f"send the body as {accepted}")
        try:
            # Malformed, too deep, or holding text no database stores ("\ud800", NUL): 400.
            document = parse_json(body)
        except ValidationFailed as exc:
            errors.extend(exc.extra["errors"])
            return None
        errors.extend(_body_errors(validator, document))
        return document


def _coerce(raw: str, schema_type: str | None) -> tuple[Any, str | None]:
    if schema_type == "integer":
        if not re.fullmatch(r"-?[0-9]{1,18}", raw):
            return raw, "must be an integer"
        return int(raw), None
    if schema_type == "boolean":
        if raw not in ("true", "false"):
            return raw, "must be true or false"
        return raw == "true", None
    return raw, None


def _first_error(validator: Draft202012Validator, value: Any) -> str | None:
    for error in validator.iter_errors(value):
        return _describe(error)
    return None


def _field(prefix: str, error: ValidationError) -> str:
    return ".".join([prefix, *(str(p) for p in error.absolute_path)])


_NOT_ACCEPTED = "is not a field this request accepts"


def _body_errors(validator: Draft202012Validator, document: Any) -> list[dict[str, str]]:
    """One error per field (the first rule it breaks), each naming the field itself: a missing
    or unknown property is ``body.<name>``, not the object that holds it."""
    found: dict[str, str] = {}
    ordered = sorted(validator.iter_errors(document), key=lambda e: [str(p) for p in e.path])
    for error in ordered:
        leaf = _leaf(error)
        where = _field("body", leaf)
        names = _named_properties(leaf)
        if names is None:
            found.setdefault(where, _describe(leaf))
            continue
        message = "is required" if leaf.validator == "required" else _NOT_ACCEPTED
        for name in names[:20]:
            found.setdefault(f"{where}.{name[:100]}", message)
    return [{"field": field, "message": message} for field, message in found.items()]


def _leaf(error: ValidationError) -> ValidationError:
    """For oneOf/anyOf, the alternative's error that ``_describe`` reports."""
    while error.validator in ("oneOf", "anyOf") and error.context:
        error = min(error.context, key=lambda e: len(list(e.path)))
    return error


def _named_properties(error: ValidationError) -> list[str] | None:
    """The properties a ``required`` or ``additionalProperties: false`` error is about."""
    instance: Any = error.instance
    schema: Any = error.schema
    if not isinstance(instance, dict) or not isinstance(schema, dict):
        return None
    if error.validator == "required" and isinstance(error.validator_value, list):
        return [str(p) for p in error.validator_value if p not in instance]
    if error.validator == "additionalProperties" and error.validator_value is False:
        known = schema.get("properties", {})
        patterns = list(schema.get("patternProperties", {}))
        return [
            str(k)
            for k in instance
            if k not in known and not any(re.search(p, str(k)) for p in patterns)
        ]
    return None


def _describe(error: ValidationError) -> str:
    """A message that names the rule but never echoes the value (it may be a secret)."""
    kind: Any = error.validator  # None for a `false` schema, whatever the stubs say
    rule: Any = error.validator_value
    if kind in ("required", "additionalProperties", "minProperties", "enum", "const"):
        if kind == "enum":
            return "must be one of: " + ", ".join(map(str, rule))
        return str(error.message)
    if kind == "type":
        return f"must be of type {rule if isinstance(rule, str) else ' or '.join(rule)}"
    if kind == "pattern":
        return "does not have the required format"
    if kind == "format" and rule == "display-name":
        problem = display_name_problem(error.instance) if isinstance(error.instance, str) else None
        return problem or "is not a valid display name"
    if kind == "format":
        return f"must be a valid {rule}"
    if kind in ("maxLength", "minLength", "maximum", "minimum"):
        words = {
            "maxLength": "at most {} characters",
            "minLength": "at least {} characters",
            "maximum": "at most {}",
            "minimum": "at least {}",
        }
        return "must be " + words[str(kind)].format(rule)
    if kind in ("oneOf", "anyOf"):
        if kind == "oneOf" and not error.context:
            return "matches more than one alternative: give exactly one"
        best = min(error.context or [], key=lambda e: len(list(e.path)), default=None)
        return _describe(best) if best is not None else "does not match any allowed form"
    if kind == "not":
        return "holds fields that are not allowed in this combination"
    if kind is None:  # a `false` schema
        return "is not allowed here"
    return f"is invalid ({kind})"


def _summary(errors: list[dict[str, str]]) -> str:
    first = errors[0]
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{first['field']}: {first['message']}{more}"


if __name__ == "__main__":  # `python -m service.api.openapi openapi.yaml`: write the copy ahead
    for name in sys.argv[1:]:
        contract = OpenApiContract(Path(name))
        if not cached_copy(contract.path, contract.text).is_file():
            sys.exit(f"could not write the parsed copy of {name}")
