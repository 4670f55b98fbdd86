#!/usr/bin/env python3
"""kafka_codegen.py - generates src/protocol/kafka_messages.{c,h} from Kafka's
JSON message schemas.

Usage (from the repository root):
    python3 tools/kafka_codegen.py [SCHEMA_DIR] [--out-dir DIR]

SCHEMA_DIR defaults to ../shared/kafka-protocol/message relative to the
repository root; DIR defaults to src/protocol. Every *Request.json and
*Response.json (plus RequestHeader.json / ResponseHeader.json) becomes C structs
whose members carry the schema field names, and descriptor tables that the
generic runtime in src/protocol/kmsg.c interprets. The output is committed, so
the build never needs the schemas. Python 3 standard library only.
"""

import glob
import json
import os
import re
import sys

INT16_MAX = 32767

PRIMS = {
    # schema type: (C type, KT_ enum)
    "bool": ("bool", "KT_BOOL"),
    "int8": ("int8_t", "KT_INT8"),
    "int16": ("int16_t", "KT_INT16"),
    "uint16": ("uint16_t", "KT_UINT16"),
    "int32": ("int32_t", "KT_INT32"),
    "uint32": ("uint32_t", "KT_UINT32"),
    "int64": ("int64_t", "KT_INT64"),
    "float64": ("double", "KT_FLOAT64"),
    "string": ("kstr_t", "KT_STRING"),
    "bytes": ("kbytes_t", "KT_BYTES"),
    "records": ("krecords_t", "KT_RECORDS"),
    "uuid": ("kuuid_t", "KT_UUID"),
}
INTS = {"int8", "int16", "uint16", "int32", "uint32", "int64"}

GEN_COMMAND = "python3 tools/kafka_codegen.py [SCHEMA_DIR]"


class SchemaError(Exception):
    pass


def load_json(path):
    """Schemas carry // comment lines; strip them before parsing."""
    with open(path, encoding="utf-8") as f:
        lines = [ln for ln in f if not ln.lstrip().startswith("//")]
    return json.loads("".join(lines))


def parse_versions(spec, what):
    """'3+' -> (3, max); '1-4' -> (1, 4); '2' -> (2, 2); 'none'/None -> empty."""
    if spec is None or spec == "none":
        return (1, 0)
    spec = str(spec).strip()
    m = re.fullmatch(r"(\d+)\+", spec)
    if m:
        return (int(m.group(1)), INT16_MAX)
    m = re.fullmatch(r"(\d+)-(\d+)", spec)
    if m:
        return (int(m.group(1)), int(m.group(2)))
    m = re.fullmatch(r"(\d+)", spec)
    if m:
        return (int(spec), int(spec))
    raise SchemaError("bad version spec %r in %s" % (spec, what))


def kv(r):
    return "{%d, %s}" % (r[0], "INT16_MAX" if r[1] == INT16_MAX else str(r[1]))


def c_string_literal(s):
    out = []
    for ch in s:
        if ch in '"\\':
            out.append("\\" + ch)
        elif 32 <= ord(ch) < 127:
            out.append(ch)
        else:
            out.extend("\\%03o" % b for b in ch.encode("utf-8"))
    return '"' + "".join(out) + '"'


def c_int64(v):
    if v == -(1 << 63):
        return "INT64_MIN"
    return "INT64_C(%d)" % v


class Struct:
    def __init__(self, cname, fields, msg):
        self.cname = cname
        self.fields = fields
        self.msg = msg


class Message:
    """One schema file: its structs, named <Message>_<Struct>."""

    def __init__(self, path):
        self.path = path
        self.js = load_json(path)
        self.name = self.js["name"]
        self.kind = self.js["type"]
        self.api_key = self.js.get("apiKey")
        self.valid = parse_versions(self.js["validVersions"], self.name)
        self.flex = parse_versions(self.js.get("flexibleVersions", "none"), self.name)
        self.structs = {}   # schema struct name -> Struct
        self.order = []     # Structs, dependencies first
        self.defs = {}      # schema struct name -> field list (definition)
        for cs in self.js.get("commonStructs", []):
            self._register(cs["name"], cs["fields"])
        self._collect(self.js["fields"])
        self.top = Struct(self.name, self.js["fields"], self)
        self._emit_order()

    def _register(self, sname, fields):
        if sname in self.defs and self.defs[sname] != fields:
            raise SchemaError("%s: struct %s defined twice differently" % (self.name, sname))
        self.defs[sname] = fields

    def _collect(self, fields):
        for f in fields:
            t = f["type"]
            base = t[2:] if t.startswith("[]") else t
            if "fields" in f:
                if base in PRIMS:
                    raise SchemaError("%s.%s: primitive with fields" % (self.name, f["name"]))
                self._register(base, f["fields"])
                self._collect(f["fields"])

    def struct_of(self, sname):
        if sname not in self.defs:
            raise SchemaError("%s: unknown struct type %s" % (self.name, sname))
        if sname not in self.structs:
            self.structs[sname] = Struct("%s_%s" % (self.name, sname), self.defs[sname], self)
        return self.structs[sname]

    def _emit_order(self):
        seen = set()

        def visit(fields, stack):
            for f in fields:
                t = f["type"]
                base = t[2:] if t.startswith("[]") else t
                if base in PRIMS:
                    continue
                if base in stack:
                    raise SchemaError("%s: recursive struct %s" % (self.name, base))
                st = self.struct_of(base)
                if base in seen:
                    continue
                visit(st.fields, stack | {base})
                seen.add(base)
                self.order.append(st)

        # Common structs first (even unused ones) so handlers can use them.
        for cs in self.js.get("commonStructs", []):
            if cs["name"] not in seen:
                st = self.struct_of(cs["name"])
                visit(st.fields, {cs["name"]})
                if cs["name"] not in seen:
                    seen.add(cs["name"])
                    self.order.append(st)
        visit(self.js["fields"], set())

    def all_structs(self):
        return self.order + [self.top]


class Field:
    """A schema field resolved to what the C tables need."""

    def __init__(self, msg, owner, f):
        self.name = f["name"]
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", self.name):
            raise SchemaError("%s: bad field name %r" % (owner.cname, self.name))
        where = "%s.%s" % (owner.cname, self.name)
        t = f["type"]
        self.versions = parse_versions(f["versions"], where)
        self.nullable = parse_versions(f.get("nullableVersions"), where)
        self.tagged = parse_versions(f.get("taggedVersions"), where) if "tag" in f else (1, 0)
        self.tag = int(f["tag"]) if "tag" in f else 0
        if "flexibleVersions" in f:
            self.flexible = parse_versions(f["flexibleVersions"], where)
        else:
            self.flexible = msg.flex
        self.is_array = t.startswith("[]")
        base = t[2:] if self.is_array else t
        self.base = base
        self.sub = None if base in PRIMS else msg.struct_of(base)
        self.default = f.get("default")
        if self.is_array:
            self.ctype = "KARRAY(%s)" % (PRIMS[base][0] if base in PRIMS else self.sub.cname)
            self.kt = "KT_ARRAY"
            self.elem_kt = PRIMS[base][1] if base in PRIMS else "KT_STRUCT"
            self.elem_ctype = PRIMS[base][0] if base in PRIMS else self.sub.cname
            if base in ("bytes", "records"):
                raise SchemaError("%s: array of %s unsupported" % (where, base))
        elif self.sub is not None:
            self.ctype = self.sub.cname
            self.kt = "KT_STRUCT"
        else:
            self.ctype = PRIMS[base][0]
            self.kt = PRIMS[base][1]
        self.has_present = self.kt == "KT_STRUCT" and self.nullable[0] <= self.nullable[1]
        self.def_null = False
        self.def_int = 0
        self.def_f64 = 0.0
        self.def_str = None
        d = self.default
        if self.is_array or self.kt in ("KT_STRUCT", "KT_BYTES", "KT_RECORDS", "KT_UUID"):
            if d is not None and str(d) not in ("null", ""):
                raise SchemaError("%s: unsupported default %r" % (where, d))
            self.def_null = str(d) == "null" or self.kt == "KT_RECORDS"
            if self.kt == "KT_STRUCT" and str(d) == "null" and not self.has_present:
                raise SchemaError("%s: null default on a non-nullable struct" % where)
        elif self.kt == "KT_STRING":
            if d is None:
                self.def_str = ""
            elif str(d) == "null":
                self.def_null = True
            else:
                self.def_str = str(d)
        elif base == "bool":
            if d is None:
                self.def_int = 0
            elif str(d).lower() in ("true", "false"):
                self.def_int = 1 if str(d).lower() == "true" else 0
            else:
                raise SchemaError("%s: bad bool default %r" % (where, d))
        elif base in INTS:
            self.def_int = int(str(d), 0) if d is not None else 0
        elif base == "float64":
            self.def_f64 = float(d) if d is not None else 0.0

    def is_tagged(self):
        return self.tagged[0] <= self.tagged[1]


def wrap_entry(parts, width=100):
    """One `{ .a = .., .b = .. },` table entry, wrapped to lines under width."""
    lines, cur = [], "    {"
    for i, p in enumerate(parts):
        piece = " " + p + ("," if i + 1 < len(parts) else " },")
        if len(cur) + len(piece) > width and cur.strip() != "{":
            lines.append(cur)
            cur = "     "
        cur += piece
    lines.append(cur)
    return "\n".join(lines)


def resolve_fields(st):
    fields = [Field(st.msg, st, f) for f in st.fields]
    members = [f.name for f in fields] + [f.name + "Present" for f in fields if f.has_present]
    if len(set(members)) != len(members):
        raise SchemaError("%s: duplicate member names" % st.cname)
    return fields


def gen_header(msgs, apis):
    out = []
    w = out.append
    w("/*")
    w(" * kafka_messages.h - GENERATED by tools/kafka_codegen.py from Kafka's JSON")
    w(" * message schemas. Do not edit: regenerate with")
    w(" *     %s" % GEN_COMMAND)
    w(" * (SCHEMA_DIR defaults to ../shared/kafka-protocol/message).")
    w(" *")
    w(" * One C struct per schema struct, named <Message>_<Struct>, members named")
    w(" * exactly as the schema fields. A nullable struct-typed field is embedded by")
    w(" * value with a `bool <Field>Present` member before it (false = null). Each")
    w(" * struct has a descriptor <Type>_desc for kmsg_decode/kmsg_encode and")
    w(" * <Type>_init(), which sets every field to its schema default.")
    w(" */")
    w("#ifndef RUNNEL_KAFKA_MESSAGES_H")
    w("#define RUNNEL_KAFKA_MESSAGES_H")
    w("")
    w('#include "protocol/kmsg.h"')
    w("")
    w("/* API keys found in the schemas. */")
    w("enum kapi_key {")
    for key, name, _req, _resp in apis:
        w("    KAPI_%s = %d," % (snake(name).upper(), key))
    w("};")
    w("")
    for m in msgs:
        key = "api key %d, " % m.api_key if m.api_key is not None else ""
        w("/* ---- %s (%sversions %d-%d) ---- */" % (m.name, key, m.valid[0], m.valid[1]))
        for st in m.all_structs():
            fields = resolve_fields(st)
            w("typedef struct %s {" % st.cname)
            if not fields:
                w("    char kmsg_empty_; /* no fields */")
            for f in fields:
                if f.has_present:
                    w("    bool %sPresent;" % f.name)
                w("    %s %s;" % (f.ctype, f.name))
            w("} %s;" % st.cname)
            w("extern const kmsg_desc_t %s_desc;" % st.cname)
            w("void %s_init(%s *m);" % (st.cname, st.cname))
        w("")
    w("#endif")
    return "\n".join(out) + "\n"


def snake(name):
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name)


def gen_source(msgs, apis):
    out = []
    w = out.append
    w("/*")
    w(" * kafka_messages.c - GENERATED by tools/kafka_codegen.py from Kafka's JSON")
    w(" * message schemas. Do not edit: regenerate with")
    w(" *     %s" % GEN_COMMAND)
    w(" * Descriptor tables for the runtime in kmsg.c, and the API table.")
    w(" */")
    w("#define KMSG_INTERNAL")
    w('#include "protocol/kafka_messages.h"')
    w("")
    w("#include <stddef.h>")
    w("")
    for m in msgs:
        for st in m.all_structs():
            fields = resolve_fields(st)
            c = st.cname
            if fields:
                w("static const kmsg_field_t %s_fields[] = {" % c)
                for f in fields:
                    parts = ['.name = "%s"' % f.name, ".type = %s" % f.kt]
                    if f.kt == "KT_ARRAY":
                        parts.append(".elem = %s" % f.elem_kt)
                        parts.append(".elem_size = sizeof(%s)" % f.elem_ctype)
                    parts.append(".offset = offsetof(%s, %s)" % (c, f.name))
                    if f.has_present:
                        parts.append(".has_present = true")
                        parts.append(".present_off = offsetof(%s, %sPresent)" % (c, f.name))
                    if f.def_null:
                        parts.append(".def_null = true")
                    parts.append(".versions = %s" % kv(f.versions))
                    parts.append(".nullable = %s" % kv(f.nullable))
                    parts.append(".tagged = %s" % kv(f.tagged))
                    parts.append(".flexible = %s" % kv(f.flexible))
                    if f.is_tagged():
                        parts.append(".tag = %d" % f.tag)
                    if f.def_int:
                        parts.append(".def_int = %s" % c_int64(f.def_int))
                    if f.def_f64:
                        parts.append(".def_f64 = %r" % f.def_f64)
                    if f.def_str:
                        parts.append(".def_str = %s" % c_string_literal(f.def_str))
                    if f.sub is not None:
                        parts.append(".sub = &%s_desc" % f.sub.cname)
                    w(wrap_entry(parts))
                w("};")
            tagged = sorted((f.tag, i) for i, f in enumerate(fields) if f.is_tagged())
            tags = [t for t, _ in tagged]
            if len(set(tags)) != len(tags):
                # The same tag in disjoint version ranges would be legal but is unused; refuse.
                raise SchemaError("%s: duplicate tags" % c)
            if tagged:
                w("static const uint16_t %s_tag_order[] = { %s };"
                  % (c, ", ".join(str(i) for _, i in tagged)))
            w("const kmsg_desc_t %s_desc = {" % c)
            w('    .name = "%s",' % c)
            w("    .size = sizeof(%s)," % c)
            table = "%s_fields" % c if fields else "NULL"
            w("    .fields = %s, .nfields = %d," % (table, len(fields)))
            w("    .ntagged = %d, .tag_order = %s, .flexible = %s," %
              (len(tagged), "%s_tag_order" % c if tagged else "NULL", kv(m.flex)))
            w("};")
            w("void %s_init(%s *m)" % (c, c))
            w("{")
            w("    kmsg_init(&%s_desc, m);" % c)
            w("}")
            w("")
    maxkey = max(k for k, _, _, _ in apis)
    w("const kapi_info_t kapi_table[%d] = {" % (maxkey + 1))
    for key, name, req, resp in apis:
        first_flex = req.flex[0] if req.flex[0] <= req.flex[1] else -1
        w("    [%d] = { .api_key = %d, .name = \"%s\", .min_version = %d, .max_version = %d,"
          % (key, key, name, req.valid[0], req.valid[1]))
        w("           .first_flexible = %d, .request = &%s_desc, .response = &%s_desc," %
          (first_flex, req.name, resp.name))
        w("           .request_size = sizeof(%s), .response_size = sizeof(%s) },"
          % (req.name, resp.name))
    w("};")
    w("const int kapi_table_len = %d;" % (maxkey + 1))
    return "\n".join(out) + "\n"


def main(argv):
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    args = list(argv[1:])
    out_dir = os.path.join(root, "src", "protocol")
    if "--out-dir" in args:
        i = args.index("--out-dir")
        out_dir = args[i + 1]
        del args[i:i + 2]
    if len(args) > 1 or any(a.startswith("-") for a in args):
        sys.stderr.write(__doc__)
        return 2
    default_dir = os.path.join(root, "..", "shared", "kafka-protocol", "message")
    schema_dir = args[0] if args else default_dir
    paths = sorted(glob.glob(os.path.join(schema_dir, "*Request.json")) +
                   glob.glob(os.path.join(schema_dir, "*Response.json")))
    headers = [os.path.join(schema_dir, n) for n in ("RequestHeader.json", "ResponseHeader.json")]
    paths = [p for p in headers if os.path.exists(p)] + paths
    if not paths:
        sys.stderr.write("kafka_codegen: no schemas in %s\n" % schema_dir)
        return 1
    try:
        msgs = [Message(p) for p in paths]
        byname = {m.name: m for m in msgs}
        if len(byname) != len(msgs):
            raise SchemaError("duplicate message names")
        reqs = {m.api_key: m for m in msgs if m.kind == "request"}
        resps = {m.api_key: m for m in msgs if m.kind == "response"}
        apis = []
        for key in sorted(reqs):
            req = reqs[key]
            resp = resps.get(key)
            if resp is None:
                raise SchemaError("api key %d: request without response" % key)
            if req.valid != resp.valid or req.flex != resp.flex:
                sys.stderr.write("kafka_codegen: warning: %s and %s disagree on versions\n"
                                 % (req.name, resp.name))
            name = req.name[:-len("Request")]
            apis.append((key, name, req, resp))
        hdr = gen_header(msgs, apis)
        src = gen_source(msgs, apis)
    except (SchemaError, KeyError, ValueError) as e:
        sys.stderr.write("kafka_codegen: %s\n" % e)
        return 1
    for name, text in (("kafka_messages.h", hdr), ("kafka_messages.c", src)):
        path = os.path.join(out_dir, name)
        with open(path + ".tmp", "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(path + ".tmp", path)
    print("kafka_codegen: %d messages, %d APIs -> %s" % (len(msgs), len(apis), out_dir))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
