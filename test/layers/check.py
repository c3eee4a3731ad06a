#!/usr/bin/env python3
"""Layers: no file of src/, src/server/ or src/refresher/ calls, directly or
through others, a file that calls it back.

Each C file is compiled on its own (cc -c) and its object's symbols read with
nm: file A depends on file B when A refers to a symbol (function or variable)
that B defines. The dependency graph of each directory must have no cycle.
Prints one "ok - layers: DIR" / "not ok - layers: DIR" line per directory,
naming each cycle found and the symbols that close it.

    test/layers/check.py [--graph]     (--graph also prints each file's dependencies)
"""
import glob, os, subprocess, sys, tempfile

top = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def pg(flag):
    return subprocess.run(["pg_config", flag], capture_output=True, text=True, check=True).stdout.strip()


DIRS = {
    "src": ["-I" + pg("--includedir-server"), "-I" + pg("--includedir"), "-Isrc"],
    "src/server": ["-I" + pg("--includedir")],
    "src/refresher": ["-I" + pg("--includedir")],
}


def symbols(obj):
    out = subprocess.run(["nm", "-P", obj], capture_output=True, text=True, check=True).stdout
    defined, undefined = set(), set()
    for line in out.splitlines():
        parts = line.split()
        if len(parts) < 2:
            continue
        name, kind = parts[0], parts[1]
        if kind == "U":
            undefined.add(name)
        elif kind in "TDBRCGSV":  # global definitions (lower case = local, ignored)
            defined.add(name)
    return defined, undefined


def graph(d, flags, tmp):
    defs, refs = {}, {}
    for c in sorted(glob.glob(os.path.join(top, d, "*.c"))):
        name = os.path.basename(c)
        obj = os.path.join(tmp, d.replace("/", "_") + "_" + name + ".o")
        r = subprocess.run(["cc", "-std=gnu11", "-c", "-o", obj, c] + flags, cwd=top,
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise SystemExit("not ok - layers: %s does not compile on its own\n# %s" % (c, r.stderr[:500]))
        defs[name], refs[name] = symbols(obj)
    edges = {}
    for a in defs:
        edges[a] = {}
        for b in defs:
            if a != b:
                via = refs[a] & defs[b]
                if via:
                    edges[a][b] = sorted(via)
    return edges


def cycles(edges):
    """Strongly connected components of more than one file (Tarjan)."""
    index, low, stack, on, out, n = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = n[0]; n[0] += 1
        stack.append(v); on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w); low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop(); on.discard(w); comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def main():
    show = "--graph" in sys.argv
    failed = 0
    with tempfile.TemporaryDirectory() as tmp:
        for d, flags in DIRS.items():
            edges = graph(d, flags, tmp)
            if show:
                for a in sorted(edges):
                    print("# %s/%s -> %s" % (d, a, ", ".join(sorted(edges[a])) or "-"))
            found = cycles(edges)
            if not found:
                print("ok - layers: no file of %s/ calls a file that calls it back (%d files)" % (d, len(edges)))
                continue
            failed += 1
            print("not ok - layers: %s/ has call cycles" % d)
            for comp in found:
                print("#   cycle among %s" % ", ".join(comp))
                for a in comp:
                    for b in comp:
                        if b in edges[a]:
                            print("#     %s -> %s: %s" % (a, b, ", ".join(edges[a][b][:6])))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
