#!/usr/bin/env python3
"""Finds circles between modules: two or more sibling modules of a crate that use each
other, directly or through others (`a` uses `crate::b`, `b` uses `crate::a`). A module using
its parent or ancestors (`super::*`) is not a circle: a child is part of its parent.

    scripts/module_cycles.py [CRATE_SRC_DIR...]     # by default every crate of the workspace

Prints each circle and exits 1 if there is any; prints the modules and edges it read with -v.
"""
import re
import sys
from collections import defaultdict
from pathlib import Path

ROOTS = ["topology/src", "dataplane/src", "control/src", "dpdk-bindings/src", "benches/src"]
PATH = re.compile(r"\b(crate|super|self)((?:::[A-Za-z_][A-Za-z0-9_]*)*)(::\{)?")


def module_of(src: Path, file: Path):
    parts = list(file.relative_to(src).with_suffix("").parts)
    if parts[-1] in ("lib", "main", "mod"):
        parts = parts[:-1]
    return parts


def brace_heads(text: str, start: int):
    """The first path segment of each item of the `{...}` list opening at `start`."""
    depth, item, heads = 0, "", []
    for ch in text[start:]:
        if ch == "{":
            depth += 1
            if depth == 1:
                continue
        elif ch == "}":
            depth -= 1
            if depth == 0:
                heads.append(item)
                break
        if depth == 1 and ch == ",":
            heads.append(item)
            item = ""
        elif depth >= 1:
            item += ch
    return [h.strip().split("::")[0].strip() for h in heads if h.strip()]


def strip_comments(text: str) -> str:
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    return re.sub(r"//[^\n]*", "", text)


def references(src: Path, file: Path, modules):
    here = module_of(src, file)
    # A file's own inline `mod tests` is the file's module for this purpose.
    text = strip_comments(file.read_text())
    for m in PATH.finditer(text):
        kind, rest, brace = m.group(1), m.group(2), m.group(3)
        segments = [s for s in rest.split("::") if s]
        if kind == "crate":
            base = []
        elif kind == "self":
            base = list(here)
        else:
            base = list(here)
            # `super::super::x`: each `super` climbs one level.
            while segments and segments[0] == "super":
                segments.pop(0)
                base = base[:-1]
            base = base[:-1]
        targets = [base + segments]
        if brace:
            targets = [base + segments + [h] for h in brace_heads(text, m.end() - 1)]
        for target in targets:
            # Keep the longest prefix that names a module.
            while target and tuple(target) not in modules:
                target = target[:-1]
            yield here, target


def edges_of(src: Path):
    files = [f for f in src.rglob("*.rs")]
    modules = {tuple(module_of(src, f)) for f in files}
    edges = defaultdict(set)
    for f in files:
        for here, target in references(src, f, modules):
            common = 0
            while common < min(len(here), len(target)) and here[common] == target[common]:
                common += 1
            if common < len(here) and common < len(target):
                parent = tuple(here[:common])
                edges[parent].add((here[common], target[common]))
    return modules, edges


def circles(edges):
    """Strongly connected components of more than one module (Tarjan)."""
    graph = defaultdict(set)
    for a, b in edges:
        graph[a].add(b)
        graph.setdefault(b, set())
    index, low, stack, on, found, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
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

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def main():
    args = [a for a in sys.argv[1:] if a != "-v"]
    verbose = "-v" in sys.argv[1:]
    root = Path(__file__).resolve().parent.parent
    bad = 0
    for src in [Path(a) for a in args] or [root / r for r in ROOTS]:
        modules, edges = edges_of(src)
        for parent, pairs in sorted(edges.items()):
            where = "::".join(("crate",) + parent)
            if verbose:
                for a, b in sorted(pairs):
                    print(f"{src}: {where}: {a} -> {b}")
            for component in circles(pairs):
                bad += 1
                inside = {(a, b) for a, b in pairs if a in component and b in component}
                print(f"{src}: circle in {where}: " + ", ".join(f"{a} -> {b}" for a, b in sorted(inside)))
    if bad == 0:
        print("no circles between modules")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
