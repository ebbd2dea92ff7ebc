#!/usr/bin/env python3
"""Fails if the modules of a Rust crate import each other in a circle.

Usage: module-cycles.py CRATE_SRC_DIR...

A module's imports are the `crate::module` paths and the names re-exported at the crate root
(`pub use module::Name`) that its code (not its comments) uses; test modules are left out.
The check is lexical, a guard for the layering docs/architecture.md describes, not a parser.
"""
import os
import re
import sys


def edges_of(root):
    crate_root = os.path.join(root, "lib.rs")
    if not os.path.exists(crate_root):
        crate_root = os.path.join(root, "main.rs")
    top = open(crate_root).read()
    mods = re.findall(r"^(?:pub )?mod (\w+);", top, re.M)
    name2mod = {}
    for m, names in re.findall(r"^pub use (\w+)::\{?([^;]*?)\}?;", top, re.M | re.S):
        for n in re.split(r"[,\s]+", names):
            if n.strip():
                name2mod[n.strip()] = m
    edges = {m: set() for m in mods}

    def files(m):
        p = os.path.join(root, m + ".rs")
        if os.path.exists(p):
            return [p]
        d = os.path.join(root, m)
        return [os.path.join(d, f) for f in os.listdir(d) if f.endswith(".rs")]

    for m in mods:
        for f in files(m):
            lines = open(f).read().split("\n")
            src = "\n".join(l for l in lines if not l.strip().startswith("//"))
            src = re.sub(r"#\[cfg\(all\(test.*?\n}\n", "", src, flags=re.S)
            for path in re.findall(r"crate::([\w:{}, \n]+)", src):
                first = re.split(r"[:{},\s]", path)[0]
                target = first if first in edges else name2mod.get(first)
                if target and target != m:
                    edges[m].add(target)
            for block in re.findall(r"use crate::\{([^;]*)\};", src, re.S):
                for n in re.findall(r"\b([A-Z]\w+)\b", block):
                    if name2mod.get(n, m) != m:
                        edges[m].add(name2mod[n])
                for n in re.findall(r"(?:^|[{,\s])(\w+)(?=::|\s*[,}]|$)", block):
                    if n in edges and n != m:
                        edges[m].add(n)
    return edges


def cycles(edges):
    index, low, stack, on, found, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in edges:
        if v not in index:
            visit(v)
    return found


failed = False
for root in sys.argv[1:]:
    for cycle in cycles(edges_of(root)):
        print(f"{root}: modules import each other in a circle: {', '.join(cycle)}")
        failed = True
sys.exit(1 if failed else 0)
