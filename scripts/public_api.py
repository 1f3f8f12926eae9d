#!/usr/bin/env python3
"""Prints the public API of a crate, one item per line, sorted, from its rustdoc JSON.

Usage: public_api.py <crate.json>

Walks the crate from its root through public modules and `pub use` re-exports, and prints
every item a user can name: modules, types with their public fields and variants, traits with
their items, functions with their signatures, inherent methods, and the trait impls of each
type (auto and blanket impls left out). `scripts/public-api` diffs this against the committed
snapshot, so a change to the public API is always deliberate.
"""

import json
import sys


def render(ty):
    """A type from rustdoc JSON, written as Rust (close enough to spot a change)."""
    if ty is None:
        return "()"
    if not isinstance(ty, dict):
        return str(ty)
    kind, value = next(iter(ty.items()))
    if kind == "resolved_path":
        return value["path"] + render_args(value.get("args"))
    if kind == "generic":
        return value
    if kind == "primitive":
        return value
    if kind == "borrowed_ref":
        lifetime = (value.get("lifetime") or "") + " " if value.get("lifetime") else ""
        mutable = "mut " if value.get("is_mutable") else ""
        return f"&{lifetime}{mutable}{render(value['type'])}"
    if kind == "raw_pointer":
        return ("*mut " if value.get("is_mutable") else "*const ") + render(value["type"])
    if kind == "tuple":
        return "(" + ", ".join(render(t) for t in value) + ")"
    if kind == "slice":
        return "[" + render(value) + "]"
    if kind == "array":
        return "[" + render(value["type"]) + "; " + str(value["len"]) + "]"
    if kind == "impl_trait":
        return "impl " + " + ".join(render_bound(b) for b in value)
    if kind == "dyn_trait":
        return "dyn " + " + ".join(
            t["trait"]["path"] + render_args(t["trait"].get("args")) for t in value["traits"]
        )
    if kind == "qualified_path":
        trait = value.get("trait")
        trait = trait["path"] if trait else "?"
        return f"<{render(value['self_type'])} as {trait}>::{value['name']}"
    if kind == "function_pointer":
        sig = value["sig"]
        return "fn(" + ", ".join(render(t) for _, t in sig["inputs"]) + ") -> " + render(sig.get("output"))
    return kind


def render_args(args):
    if not args:
        return ""
    if "angle_bracketed" in args:
        parts = []
        for arg in args["angle_bracketed"]["args"]:
            if "type" in arg:
                parts.append(render(arg["type"]))
            elif "lifetime" in arg:
                parts.append(arg["lifetime"])
            elif "const" in arg:
                parts.append(str(arg["const"].get("expr", "_")))
        for constraint in args["angle_bracketed"].get("constraints", []):
            binding = constraint.get("binding", {})
            if "equality" in binding:
                parts.append(f"{constraint['name']} = {render(binding['equality'].get('type'))}")
            else:
                parts.append(constraint["name"])
        return "<" + ", ".join(parts) + ">" if parts else ""
    if "parenthesized" in args:
        value = args["parenthesized"]
        return "(" + ", ".join(render(t) for t in value["inputs"]) + ") -> " + render(value.get("output"))
    return ""


def render_bound(bound):
    if "trait_bound" in bound:
        trait = bound["trait_bound"]["trait"]
        return trait["path"] + render_args(trait.get("args"))
    if "outlives" in bound:
        return bound["outlives"]
    return "?"


def render_generics(generics):
    params = []
    for param in generics.get("params", []):
        kind = param.get("kind", {})
        if "lifetime" in kind:
            params.append(param["name"])
        elif "type" in kind:
            if kind["type"].get("is_synthetic"):
                continue
            bounds = kind["type"].get("bounds", [])
            bound = ": " + " + ".join(render_bound(b) for b in bounds) if bounds else ""
            params.append(param["name"] + bound)
        elif "const" in kind:
            params.append(f"const {param['name']}: {render(kind['const'].get('type'))}")
    return "<" + ", ".join(params) + ">" if params else ""


def render_fn(name, function):
    sig = function["sig"]
    header = function.get("header", {})
    prefix = ("const " if header.get("is_const") else "") + ("async " if header.get("is_async") else "")
    inputs = ", ".join(
        "self" if arg == "self" and t == {"generic": "Self"} else f"{arg}: {render(t)}"
        for arg, t in sig["inputs"]
    )
    output = sig.get("output")
    arrow = f" -> {render(output)}" if output is not None else ""
    return f"{prefix}fn {name}{render_generics(function.get('generics', {}))}({inputs}){arrow}"


class Api:
    def __init__(self, doc):
        self.index = doc["index"]
        self.lines = set()
        self.seen = set()

    def item(self, item_id):
        return self.index.get(str(item_id))

    def walk_module(self, module_id, path):
        module = self.item(module_id)
        for child_id in module["inner"]["module"]["items"]:
            child = self.item(child_id)
            if child is None or child.get("visibility") != "public":
                continue
            kind = next(iter(child["inner"]))
            if kind == "use":
                use = child["inner"]["use"]
                target = self.item(use["id"]) if use.get("id") is not None else None
                if target is None:
                    self.lines.add(f"pub use {'::'.join(path)}::{use['name']} = {use['source']}")
                elif use.get("is_glob"):
                    self.walk_module(use["id"], path)
                else:
                    self.emit(target, path + [use["name"]])
            else:
                self.emit(child, path + [child["name"]])

    def emit(self, item, path):
        kind = next(iter(item["inner"]))
        inner = item["inner"][kind]
        name = "::".join(path)
        key = (item["id"], name)
        if key in self.seen:
            return
        self.seen.add(key)
        if kind == "module":
            self.lines.add(f"mod {name}")
            self.walk_module(item["id"], path)
        elif kind == "function":
            self.lines.add(render_fn(name, inner))
        elif kind in ("constant", "static"):
            ty = inner.get("type") or inner.get("const", {}).get("type")
            self.lines.add(f"{kind} {name}: {render(ty)}")
        elif kind == "type_alias":
            self.lines.add(f"type {name}{render_generics(inner.get('generics', {}))} = {render(inner['type'])}")
        elif kind == "struct":
            self.lines.add(f"struct {name}{render_generics(inner.get('generics', {}))}")
            shape = inner.get("kind")
            # A unit struct's kind is the string "unit"; a tuple struct's lists its fields.
            if isinstance(shape, dict) and "plain" in shape:
                fields = shape["plain"].get("fields", [])
            elif isinstance(shape, dict) and "tuple" in shape:
                fields = [field for field in shape["tuple"] if field is not None]
            else:
                fields = []
            for field_id in fields:
                field = self.item(field_id)
                if field and field.get("visibility") == "public":
                    self.lines.add(f"field {name}::{field['name']}: {render(field['inner']['struct_field'])}")
            self.emit_impls(inner.get("impls", []), name)
        elif kind == "enum":
            self.lines.add(f"enum {name}{render_generics(inner.get('generics', {}))}")
            for variant_id in inner.get("variants", []):
                variant = self.item(variant_id)
                if variant:
                    self.lines.add(f"variant {name}::{variant['name']}")
            self.emit_impls(inner.get("impls", []), name)
        elif kind == "trait":
            self.lines.add(f"trait {name}{render_generics(inner.get('generics', {}))}")
            for member_id in inner.get("items", []):
                member = self.item(member_id)
                if member is None:
                    continue
                member_kind = next(iter(member["inner"]))
                if member_kind == "function":
                    self.lines.add(f"{name}: " + render_fn(member["name"], member["inner"]["function"]))
                else:
                    self.lines.add(f"{name}: {member_kind} {member['name']}")
        else:
            self.lines.add(f"{kind} {name}")

    def emit_impls(self, impl_ids, name):
        for impl_id in impl_ids:
            impl = self.item(impl_id)
            if impl is None:
                continue
            inner = impl["inner"]["impl"]
            if inner.get("is_synthetic") or inner.get("blanket_impl") is not None:
                continue
            trait = inner.get("trait")
            if trait is None:
                for member_id in inner.get("items", []):
                    member = self.item(member_id)
                    if member and member.get("visibility") == "public":
                        member_kind = next(iter(member["inner"]))
                        if member_kind == "function":
                            self.lines.add(render_fn(f"{name}::{member['name']}", member["inner"]["function"]))
                        else:
                            self.lines.add(f"{member_kind} {name}::{member['name']}")
            else:
                self.lines.add(f"impl {trait['path']}{render_args(trait.get('args'))} for {name}")


def main():
    with open(sys.argv[1]) as file:
        doc = json.load(file)
    api = Api(doc)
    root = api.item(doc["root"])
    api.walk_module(doc["root"], [root["name"]])
    for line in sorted(api.lines):
        print(line)


if __name__ == "__main__":
    main()
