#!/usr/bin/env python3
"""check_layers.py: the layering rules of lorafuse's library code, checked on the sources and on the
symbols of the built objects (CTest check_layers, label cpu; python3 standard library and nm only).

Library code: include/lorafuse/ (public headers), host/ and kernels/. Rules:
  public-include    a public header includes only "lorafuse/..." headers and system headers, never
                    cJSON (the public API does not expose a third-party library)
  internal-include  a *_internal.h header is included only from its own folder
  layer-include     a file does not include a header of a higher layer
  layer-call        an object does not use a symbol defined in an object of a higher layer (nm)
  cycle             no call cycle between the .c files of lf_core: A uses a symbol defined in B and B
                    (transitively) uses one defined in A (nm, strongly connected components)
Layers, bottom up (a file may use its own layer and those below):
  0 kernels/common  1 host/base  2 kernels/cpu/adapters, kernels/cpu/nn, kernels/cpu/linalg, kernels/cuda
  3 host/io, host/keymap, host/adapter  4 host/plan  5 host/runtime  6 host/sample
  6.5 host/cuda (anything below host/pipeline)  7 host/pipeline  7.5 host/serve, host/batch  8 host/cli
A public header counts as the layer of the .c files that define what it declares: every identifier
of the header that some object defines (nm) votes for its object's folder; the header takes the
highest of those layers (a header with no defined symbol, e.g. types only, is layer 0).

Violations listed in the allow-list (--allow, one key per line, '#' starts a comment that gives the
reason) are reported as known and do not fail; a listed key that no longer occurs fails too, so the
list stays exact. Exit status: 0 clean, 1 new or stale violations, 2 usage or tool errors.

Usage: check_layers.py --source DIR --objects LIST [--objects LIST ...] [--cycle-objects LIST]
                       [--allow FILE] [--nm NM]
  LIST: a file with one object path per line (CMake: $<TARGET_OBJECTS:lf_core>); each object maps to
  its source by the path after "CMakeFiles/<target>.dir/". --cycle-objects names the list whose
  objects the call-cycle check covers (default: every --objects list).
"""
import argparse
import os
import re
import subprocess
import sys
from collections import defaultdict

LAYERS = [
    ("kernels/common", 0),
    ("host/base", 1),
    ("kernels/cpu/adapters", 2),
    ("kernels/cpu/nn", 2),
    ("kernels/cpu/linalg", 2),
    ("kernels/cuda", 2),
    ("host/io", 3),
    ("host/keymap", 3),
    ("host/adapter", 3),
    ("host/plan", 4),
    ("host/runtime", 5),
    ("host/sample", 6),
    ("host/cuda", 6.5),
    ("host/pipeline", 7),
    ("host/serve", 7.5),
    ("host/batch", 7.5),
    ("host/cli", 8),
]
LIB_ROOTS = ("include/lorafuse", "host", "kernels")
SRC_EXT = (".c", ".h", ".cu", ".cuh", ".in")
INCLUDE_RE = re.compile(r'^\s*#\s*include\s*([<"])([^>"]+)[>"]', re.M)
IDENT_RE = re.compile(r"\b[A-Za-z_][A-Za-z0-9_]*\b")
CJSON_RE = re.compile(r"(^|/)cjson\.h$", re.I)


def folder_layer(path):
    """Layer of a library path by its folder (None outside the layered folders)."""
    d = os.path.dirname(path)
    best = None
    for prefix, rank in LAYERS:
        if d == prefix or d.startswith(prefix + "/"):
            if best is None or len(prefix) > len(best[0]):
                best = (prefix, rank)
    return best


def die(msg):
    print("check_layers: " + msg, file=sys.stderr)
    sys.exit(2)


def strip_comments(text):
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    return re.sub(r"//[^\n]*", " ", text)


def library_files(src):
    out = []
    for root in LIB_ROOTS:
        for dirpath, _, names in os.walk(os.path.join(src, root)):
            for n in names:
                if n.endswith(SRC_EXT):
                    out.append(os.path.relpath(os.path.join(dirpath, n), src))
    return sorted(out)


def resolve_include(src, including, kind, name):
    """Repository path of an included library header, or None (system / generated / not found)."""
    if kind == '"':
        cand = os.path.normpath(os.path.join(os.path.dirname(including), name))
        if os.path.isfile(os.path.join(src, cand)):
            return cand
    for base in ("", "include"):
        cand = os.path.normpath(os.path.join(base, name))
        if os.path.isfile(os.path.join(src, cand)):
            return cand
    if name.startswith("lorafuse/") and os.path.isfile(os.path.join(src, "include", name + ".in")):
        return os.path.join("include", name + ".in")  # generated at configure time (lf_config.h)
    return None


def read_object_list(path):
    try:
        with open(path) as f:
            return [l.strip() for l in f if l.strip()]
    except OSError as e:
        die("cannot read the object list %s: %s" % (path, e))


def object_source(obj, src):
    m = re.search(r"CMakeFiles/[^/]+\.dir/(.+)\.o(bj)?$", obj.replace(os.sep, "/"))
    if m and os.path.isfile(os.path.join(src, m.group(1))):
        return os.path.normpath(m.group(1))
    return None


def nm_symbols(nm, obj):
    try:
        out = subprocess.run([nm, "-P", "-g", obj], check=True, capture_output=True, text=True).stdout
    except (OSError, subprocess.CalledProcessError) as e:
        die("%s %s failed: %s" % (nm, obj, e))
    defined, undefined = set(), set()
    for line in out.splitlines():
        parts = line.split()
        if len(parts) < 2:
            continue
        sym, typ = parts[0], parts[1]
        if typ == "U":
            undefined.add(sym)
        elif typ not in ("w", "v"):  # weak undefined: neither uses nor defines
            defined.add(sym)
    return defined, undefined


def tarjan(nodes, edges):
    index, low, on, stack, comps, counter = {}, {}, set(), [], [], [0]
    sys.setrecursionlimit(10000)

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            comps.append(sorted(comp))

    for v in sorted(nodes):
        if v not in index:
            visit(v)
    return comps


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--source", required=True)
    ap.add_argument("--objects", action="append", required=True)
    ap.add_argument("--cycle-objects")
    ap.add_argument("--allow")
    ap.add_argument("--nm", default="nm")
    a = ap.parse_args()
    src = os.path.abspath(a.source)
    if a.cycle_objects and os.path.abspath(a.cycle_objects) not in map(os.path.abspath, a.objects):
        a.objects.append(a.cycle_objects)

    # ---- symbols per object (per source file) --------------------------------------------------
    defs, undefs, owner = {}, {}, {}
    cycle_sources = set()
    for i, lst in enumerate(a.objects):
        for obj in read_object_list(lst):
            s = object_source(obj, src)
            if s is None:
                die("cannot map object %s to a source file under %s" % (obj, src))
            d, u = nm_symbols(a.nm, obj)
            defs[s], undefs[s] = d, u
            for sym in d:
                owner.setdefault(sym, s)
            if not a.cycle_objects or os.path.abspath(lst) == os.path.abspath(a.cycle_objects):
                cycle_sources.add(s)
    if not defs:
        die("no objects")

    files = library_files(src)
    texts = {}
    for f in files:
        with open(os.path.join(src, f), encoding="utf-8", errors="replace") as fh:
            texts[f] = fh.read()

    # ---- public headers: their layer from the objects that define what they declare ------------
    header_layer, header_why = {}, {}
    for f in files:
        if not f.startswith("include/lorafuse/"):
            continue
        votes = defaultdict(set)
        for ident in set(IDENT_RE.findall(strip_comments(texts[f]))):
            o = owner.get(ident)
            if o:
                votes[folder_layer(o)].add(ident)
        votes.pop(None, None)
        if votes:
            (prefix, rank) = max(votes, key=lambda pr: (pr[1], pr[0]))
            header_layer[f] = (prefix, rank)
            header_why[f] = ", ".join(
                "%s (%d)" % (p, len(v)) for (p, _), v in sorted(votes.items(), key=lambda kv: kv[0][1])
            )
        else:
            header_layer[f] = ("types only", 0)
            header_why[f] = "no symbol defined in an object"

    ident_cache = {}

    def idents_of(path):
        if path not in ident_cache:
            ident_cache[path] = set(IDENT_RE.findall(strip_comments(texts.get(path, ""))))
        return ident_cache[path]

    def layer_of(path):
        if path in header_layer:
            return header_layer[path]
        return folder_layer(path)

    violations = {}  # key -> detail

    # ---- includes ------------------------------------------------------------------------------
    for f in files:
        public = f.startswith("include/lorafuse/")
        own = layer_of(f)
        for m in INCLUDE_RE.finditer(strip_comments(texts[f])):
            kind, name = m.group(1), m.group(2)
            target = resolve_include(src, f, kind, name)
            if public:
                if CJSON_RE.search(name):
                    violations["public-include %s -> %s" % (f, name)] = "a public header exposes cJSON"
                elif not (name.startswith("lorafuse/") or (kind == "<" and target is None)):
                    violations["public-include %s -> %s" % (f, name)] = "a public header includes a private one"
            if target is None:
                continue
            if os.path.basename(target).endswith("_internal.h") and os.path.dirname(target) != os.path.dirname(f):
                violations["internal-include %s -> %s" % (f, target)] = "%s is private to %s/" % (
                    os.path.basename(target), os.path.dirname(target))
            theirs = layer_of(target)
            if own and theirs and theirs[1] > own[1]:
                detail = "%s (layer %s, %s) includes a header of %s (layer %s)" % (
                    f, own[1], own[0], theirs[0], theirs[1])
                mine = sorted(idents_of(target) & defs.get(f, set()))
                if mine:  # the includer implements part of that header: the header spans two layers
                    detail += "; it defines %s declared there, so the header mixes layers" % ", ".join(mine[:4])
                violations["layer-include %s -> %s" % (f, target)] = detail

    # ---- symbols: layer order and cycles ---------------------------------------------------------
    edges, edge_syms = defaultdict(set), defaultdict(set)
    for s, u in undefs.items():
        for sym in u:
            t = owner.get(sym)
            if t and t != s:
                edges[s].add(t)
                edge_syms[(s, t)].add(sym)
    for (s, t), syms in sorted(edge_syms.items()):
        ls, lt = folder_layer(s), folder_layer(t)
        if ls and lt and lt[1] > ls[1]:
            violations["layer-call %s -> %s" % (s, t)] = "%s (layer %s) uses %s of %s (layer %s)" % (
                s, ls[1], ", ".join(sorted(syms)[:6]), t, lt[1])
    cyc_edges = {s: {t for t in ts if t in cycle_sources} for s, ts in edges.items() if s in cycle_sources}
    for comp in tarjan(cycle_sources, cyc_edges):
        if len(comp) < 2:
            continue
        members = set(comp)
        detail = "; ".join(
            "%s -> %s (%s)" % (s, t, ", ".join(sorted(edge_syms[(s, t)])[:4]))
            for s in comp for t in sorted(cyc_edges.get(s, ())) if t in members)
        violations["cycle " + " ".join(comp)] = detail

    # ---- report ----------------------------------------------------------------------------------
    allowed = {}
    if a.allow:
        with open(a.allow) as fh:
            for n, line in enumerate(fh, 1):
                key, _, reason = line.partition("#")
                key = " ".join(key.split())
                if key:
                    allowed[key] = (n, reason.strip())

    print("check_layers: %d library files, %d objects (%d in the cycle check), %d public headers" % (
        len(files), len(defs), len(cycle_sources), len(header_layer)))
    for h in sorted(header_layer):
        print("  %-36s layer %-4s %-16s [%s]" % (h, header_layer[h][1], header_layer[h][0], header_why[h]))
    new = sorted(k for k in violations if k not in allowed)
    known = sorted(k for k in violations if k in allowed)
    stale = sorted(k for k in allowed if k not in violations)
    for k in known:
        print("known:  %s   (%s: %s)" % (k, os.path.basename(a.allow), allowed[k][1] or "no reason given"))
    for k in new:
        print("FAIL    %s\n        %s" % (k, violations[k]))
    for k in stale:
        print("FAIL    stale allow-list entry (line %d of %s): %s -- this violation is gone, remove the line" % (
            allowed[k][0], a.allow, k))
    print("check_layers: %d violations (%d known in the allow-list, %d new), %d stale allow-list entries" % (
        len(violations), len(known), len(new), len(stale)))
    return 1 if new or stale else 0


if __name__ == "__main__":
    sys.exit(main())
