"""Checks recorded HTTP answers against the OpenAPI document: each answer's
path and method find their operation (the way the server routes them), its
status must be one the operation declares, its Content-Type the declared
media type, its declared headers present and its JSON body valid against the
declared schema (JSON Schema draft 2020-12, with the document's $refs
resolved, python3-jsonschema). Answers on paths the document does not name
must be its 404, and methods a path does not declare its 405 with an Allow
header naming exactly the declared methods. Standard library and
python3-jsonschema only."""

import re
import urllib.parse

import jsonschema
from jsonschema import Draft202012Validator

METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
# Answers that may come before routing, whatever the path and method: a body
# or header block over the server's limits (checked as the headers arrive).
ANY_ROUTE = {413: "PayloadTooLarge", 431: "HeadersTooLarge"}


def libmicrohttpd_own(a):
    """Whether answer a is one of libmicrohttpd's own, to a request it refused
    before the server saw it (malformed: 400 or 505; a URL too long: 414; a
    header block too big for its per-connection memory: 431). These are not
    the API's answers (the document's description says so): they have no
    Content-Type and no JSON body, and are the only answers left out."""
    return a["status"] in (400, 414, 431, 505) and a["content_type"] is None


def unescape(path):
    """Percent-decodes as the server does (routes_unescape): all but %00 and %2F."""
    def one(m):
        c = int(m.group(1), 16)
        return m.group(0) if c in (0, 0x2F) else chr(c)
    return re.sub(r"%([0-9A-Fa-f]{2})", one, path)


def pointer(*parts):
    """A JSON pointer fragment ("#/a/b~1c") from its unescaped parts."""
    return "#/" + "/".join(str(p).replace("~", "~0").replace("/", "~1") for p in parts)


class Document:
    def __init__(self, doc):
        self.doc = doc
        self.validators = {}
        self.templates = []
        for path in doc["paths"]:
            rx = "^" + "".join("[^/]+" if part.startswith("{") else re.escape(part)
                               for part in re.split(r"(\{[^}]+\})", path)) + "$"
            self.templates.append((path, re.compile(rx)))
        try:  # jsonschema >= 4.18 resolves $refs with the referencing library
            from referencing import Registry
            from referencing.jsonschema import DRAFT202012
            self.registry = Registry().with_resource("urn:openapi", DRAFT202012.create_resource(doc))
            self.base = "urn:openapi"
            self.resolver = None
        except ImportError:  # Debian 12's 4.10
            self.registry = None
            self.base = ""
            self.resolver = jsonschema.RefResolver("", doc)

    def resolve(self, obj, where):
        """Follows an OpenAPI-level $ref (a response or header); returns (object, its pointer)."""
        while isinstance(obj, dict) and "$ref" in obj:
            where = obj["$ref"]
            obj = self.doc
            for part in where[2:].split("/"):
                obj = obj[part.replace("~1", "/").replace("~0", "~")]
        return obj, where

    def validate(self, where, value):
        """The first error of value against the schema at pointer where, or None."""
        v = self.validators.get(where)
        if v is None:
            schema = {"$ref": self.base + where}
            if self.registry is not None:
                v = Draft202012Validator(schema, registry=self.registry,
                                         format_checker=jsonschema.FormatChecker())
            else:
                v = Draft202012Validator(schema, resolver=self.resolver,
                                         format_checker=jsonschema.FormatChecker())
            self.validators[where] = v
        err = jsonschema.exceptions.best_match(v.iter_errors(value))
        if err is None:
            return None
        # the failing keyword and where, never the value (bodies hold tokens)
        return "body%s fails %s at %s" % (
            "".join("[%r]" % p for p in err.absolute_path), err.validator,
            "/".join(str(p) for p in err.absolute_schema_path))

    def route(self, path):
        """The document's path template for a request path, or None."""
        path = unescape(urllib.parse.urlsplit(path).path)
        if path in self.doc["paths"]:
            return path
        for template, rx in self.templates:
            if rx.match(path):
                return template
        return None

    def declared(self, template):
        """The methods a path declares, upper-case, with HEAD for GET."""
        item = self.doc["paths"][template]
        methods = {m.upper() for m in METHODS if m in item}
        return methods | ({"HEAD"} if "GET" in methods else set())

    def check(self, a):
        """None if answer a (a recorded entry) is what the document says, else why not."""
        template = self.route(a["path"])
        status = a["status"]
        method = a["method"].upper()
        if template is None:
            name = {404: "NotFound", **ANY_ROUTE}.get(status)
            if name is None:
                return "unknown path: status %d is not 404" % status
            return self.check_response(a, {"$ref": pointer("components", "responses", name)}, method)
        op = self.doc["paths"][template].get("get" if method == "HEAD" else method.lower())
        if op is None:
            name = {405: "MethodNotAllowed", **ANY_ROUTE}.get(status)
            if name is None:
                return "method not declared: status %d is not 405" % status
            allow = a["headers"].get("allow")
            if status == 405 and {m.strip() for m in (allow or "").split(",")} != self.declared(template):
                return "Allow %r, but the document declares %s" % (allow, sorted(self.declared(template)))
            return self.check_response(a, {"$ref": pointer("components", "responses", name)}, method)
        where = pointer("paths", template, "get" if method == "HEAD" else method.lower(), "responses", status)
        resp = op["responses"].get(str(status))
        if resp is None:
            return "status %d is not declared" % status
        return self.check_response(a, resp, method, where)

    def check_response(self, a, resp, method, where=None):
        resp, where = self.resolve(resp, where)
        for name, header in (resp.get("headers") or {}).items():
            header, _ = self.resolve(header, None)
            value = a["headers"].get(name.lower())
            if value is None:
                if header.get("required"):
                    return "header %s missing" % name
                continue
            schema = header.get("schema", {})
            if schema.get("type") == "integer":
                if not re.fullmatch(r"[0-9]+", value):
                    return "header %s is not an integer" % name
                value = int(value)
            if not self.validators.setdefault(("header", name), Draft202012Validator(schema)).is_valid(value):
                return "header %s does not match its schema" % name
        content = resp.get("content") or {}
        if a["content_type"] not in content:
            return "Content-Type %r, declared %s" % (a["content_type"], sorted(content))
        if method == "HEAD":
            return None if a["body_bytes"] == 0 else "HEAD answer with a body"
        if not a["content_type"].startswith("application/json"):
            return None
        if a.get("body_invalid") or "body" not in a:
            return "body is not JSON"
        return self.validate(where + "/content/" + a["content_type"].replace("/", "~1") + "/schema", a["body"])
