#!/usr/bin/python3
"""Reads a pprof profile (gzipped or not) with a schema-less protobuf wire decoder written from
pprof's published field numbers, independent of the proxy's encoder, and prints what a test
checks as JSON.
  pprof_check.py FILE"""
import gzip, json, sys

def varint(b, i):
    shift = value = 0
    while True:
        byte = b[i]; i += 1
        value |= (byte & 0x7f) << shift
        if byte < 0x80:
            return value, i
        shift += 7

def fields(b):
    """(field number, value) pairs: ints for varints, bytes for length-delimited fields."""
    i, out = 0, []
    while i < len(b):
        key, i = varint(b, i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            v, i = varint(b, i)
        elif wire == 2:
            n, i = varint(b, i)
            v, i = b[i:i + n], i + n
            if len(v) != n:
                raise ValueError("truncated field %d" % number)
        elif wire == 1:
            v, i = int.from_bytes(b[i:i + 8], "little"), i + 8
        elif wire == 5:
            v, i = int.from_bytes(b[i:i + 4], "little"), i + 4
        else:
            raise ValueError("wire type %d" % wire)
        out.append((number, v))
    return out

def ints(v):
    """A repeated integer field: packed (bytes) or one varint."""
    if isinstance(v, int):
        return [v]
    out, i = [], 0
    while i < len(v):
        x, i = varint(v, i)
        out.append(x)
    return out

def main():
    data = open(sys.argv[1], "rb").read()
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    top = fields(data)
    strings = [v.decode() for n, v in top if n == 6]
    s = lambda i: strings[i] if 0 <= i < len(strings) else "<bad string index %d>" % i
    sample_types, samples, locations, functions, mappings = [], [], {}, {}, {}
    period_type, period = None, 0
    for n, v in top:
        if n == 1:
            f = dict(fields(v)); sample_types.append(s(f.get(1, 0)) + "/" + s(f.get(2, 0)))
        elif n == 2:
            loc, val, labels = [], [], {}
            for m, w in fields(v):
                if m == 1: loc += ints(w)
                elif m == 2: val += ints(w)
                elif m == 3:
                    lf = dict(fields(w)); labels[s(lf.get(1, 0))] = s(lf.get(2, 0))
            samples.append((loc, val, labels))
        elif n == 3:
            f = dict(fields(v)); mappings[f.get(1, 0)] = {"file": s(f.get(5, 0)), "build_id": s(f.get(6, 0))}
        elif n == 4:
            f = fields(v); d = dict(f)
            lines = [dict(fields(w)).get(1, 0) for m, w in f if m == 4]
            locations[d.get(1, 0)] = {"mapping": d.get(2, 0), "functions": lines}
        elif n == 5:
            f = dict(fields(v)); functions[f.get(1, 0)] = s(f.get(2, 0))
        elif n == 11:
            f = dict(fields(v)); period_type = s(f.get(1, 0)) + "/" + s(f.get(2, 0))
        elif n == 12:
            period = v
    leaf_functions = {}
    for loc, val, labels in samples:
        if loc and loc[0] in locations:
            for fid in locations[loc[0]]["functions"]:
                name = functions.get(fid, "?")
                leaf_functions[name] = leaf_functions.get(name, 0) + val[0]
    print(json.dumps({
        "first_string_empty": strings[:1] == [""],
        "sample_types": sample_types,
        "period_type": period_type,
        "period": period,
        "samples": sum(val[0] for _, val, _ in samples if val),
        # A CPU sample's time is its count of periods; a heap sample's bytes are at least its
        # objects, and what a stack allocated at least what it holds.
        "values_consistent": all((len(val) == 4 and val[1] >= val[0] and val[3] >= val[2] and val[0] >= val[2] and val[1] >= val[3])
                                 if sample_types[:1] == ["alloc_objects/count"] else (len(val) == 2 and val[1] == val[0] * period)
                                 for _, val, _ in samples),
        "totals": [sum(val[i] for _, val, _ in samples if len(val) > i) for i in range(len(sample_types))],
        "locations_defined": all(l in locations for loc, _, _ in samples for l in loc),
        "mappings_defined": all(l["mapping"] in mappings for l in locations.values() if l["mapping"]),
        "functions_defined": all(f in functions for l in locations.values() for f in l["functions"]),
        "threads": sorted({labels.get("thread", "") for _, _, labels in samples}),
        "functions": sorted(set(functions.values())),
        "mapping_files": sorted({m["file"] for m in mappings.values()}),
        "build_ids": sorted({m["build_id"] for m in mappings.values() if m["build_id"]}),
        "top_leaf": sorted(leaf_functions.items(), key=lambda kv: -kv[1])[:15],
    }))

if __name__ == "__main__":
    main()
