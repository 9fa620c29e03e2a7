#!/usr/bin/env python3
"""Import cycles between the modules of each crate in the workspace.

A module imports another when one of its files names a path into it: `use crate::a::b::X`,
`crate::a::X` in code, `super::X`, or a child module's path (`child::X`) from its parent. Paths are
taken at module granularity: the crate's top-level modules (`store`) and their submodules one level
down (`store::certs`); deeper modules count as the submodule they sit in.

A submodule's imports of its own parent (`super::Store` in store/certs.rs: the parent's shared
definitions, the usual layout of a Rust module family) are not counted unless `--strict` is given;
its imports of a sibling (`super::rows::X`) and of any other module are.

A re-export (`pub use child::X` in a parent) is followed to where `X` is defined, so a parent that
only re-exports its children's items (a facade) closes no cycle; a re-exported name the parent's
own code also uses is an import like any other. Methods called on a type defined elsewhere (an
`impl Store` block in another file) are not paths and are not seen.

Usage: scripts/check-cycles.py [--crate core|node|planner|mobile-bindings|tests] ...
Prints every module cycle (each strongly connected set of modules, the imports that tie it, and
its shortest cycles) and exits 1 if there is any. Python 3, standard library only.
"""

import argparse
import os
import re
import sys
from collections import defaultdict, deque

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Crate directory -> its targets' root files (a package with a library and a binary is two crates).
CRATES = {
    "core": ["src/lib.rs"],
    "node": ["src/lib.rs", "src/main.rs"],
    "planner": ["src/lib.rs"],
    "mobile-bindings": ["src/lib.rs"],
    "tests": ["src/lib.rs"],
}

IDENT = r"[A-Za-z_][A-Za-z0-9_]*"


def strip(text):
    """The text with comments and string and char literals blanked (newlines kept, so line numbers
    hold), leaving only code."""
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            i = j
        elif text.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if text.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif text.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif c == "r" and re.match(r'r#*"', text[i:]) and (i == 0 or not re.match(r"\w", text[i - 1])):
            hashes = re.match(r'r(#*)"', text[i:]).group(1)
            end = text.find('"' + hashes, i + 2 + len(hashes))
            j = n if end < 0 else end + 1 + len(hashes)
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            out.append(re.sub(r"[^\n]", " ", text[i : j + 1]))
            i = j + 1
        elif c == "'":
            m = re.match(r"'(\\.[^']*|[^'\\])'", text[i:])
            if m:
                out.append(" " * len(m.group(0)))
                i += len(m.group(0))
            else:
                out.append(c)
                i += 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def line_of(text, pos):
    return text.count("\n", 0, pos) + 1


def expand_use_tree(tree):
    """`a::{b, c::{d@e}, self}` -> [["a","b"], ["a","c","d@e"], ["a","self"]] (`@` marks a
    rename, see `parse_use`), each with a placeholder for the name it binds."""
    tree = re.sub(r"\s+", "", tree)

    def parse(s, prefix):
        out = []
        # Split s at top-level commas.
        depth, start, parts = 0, 0, []
        for k, ch in enumerate(s):
            if ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
            elif ch == "," and depth == 0:
                parts.append(s[start:k])
                start = k + 1
        parts.append(s[start:])
        for part in parts:
            if not part:
                continue
            brace = part.find("{")
            if brace >= 0:
                head = part[:brace].rstrip(":")
                inner = part[brace + 1 : part.rfind("}")]
                segs = [x for x in head.split("::") if x] if head else []
                out.extend(parse(inner, prefix + segs))
            else:
                out.append((prefix + part.split("::"), None))
        return out

    return parse(tree, [])


def parse_use(stmt):
    """The paths a `use` statement names, with the names they bind."""
    stmt = re.sub(r"\s+as\s+", "@", stmt)
    result = []
    for segs, _ in expand_use_tree(stmt):
        last = segs[-1]
        alias = None
        if "@" in last:
            last, alias = last.split("@", 1)
            segs = segs[:-1] + [last]
        if last == "self":
            segs = segs[:-1]
            bound = alias or (segs[-1] if segs else None)
        elif last == "*":
            bound = "*"
        else:
            bound = alias or last
        if segs:
            result.append((segs, bound))
    return result


class Module:
    def __init__(self, path, file, crate_dir):
        self.path = path  # tuple of names below the crate root
        self.file = file
        self.children = set()
        self.code = ""
        self.raw = ""
        self.uses = []  # (segments, bound name, is_pub, line)
        self.inline_spans = []


def find_modules(crate_dir, root_rel):
    """Every file module of the crate whose root is `root_rel`, following `mod x;`."""
    modules = {}

    def visit(path, file):
        m = Module(path, file, crate_dir)
        with open(file, encoding="utf-8") as f:
            m.raw = f.read()
        m.code = strip(m.raw)
        modules[path] = m
        base = os.path.dirname(file)
        stem = os.path.basename(file)[:-3]
        if stem not in ("mod", "lib", "main"):
            base = os.path.join(base, stem)
        for decl in re.finditer(r"(?m)^\s*(?:pub(?:\([^)]*\))?\s+)?mod\s+(" + IDENT + r")\s*;", m.code):
            name = decl.group(1)
            for cand in (os.path.join(base, name + ".rs"), os.path.join(base, name, "mod.rs")):
                if os.path.exists(cand):
                    m.children.add(name)
                    visit(path + (name,), cand)
                    break
        for decl in re.finditer(r"\bmod\s+" + IDENT + r"\s*\{", m.code):
            start = decl.end() - 1
            depth, j = 0, start
            while j < len(m.code):
                if m.code[j] == "{":
                    depth += 1
                elif m.code[j] == "}":
                    depth -= 1
                    if depth == 0:
                        break
                j += 1
            m.inline_spans.append((start, j))

    visit((), os.path.join(crate_dir, root_rel))
    return modules


def inline_depth(m, pos):
    return sum(1 for a, b in m.inline_spans if a <= pos <= b)


def absolute(m, segs, pos):
    """`segs` as written in module `m` at `pos`, as a path from the crate root, or None for a
    path outside the crate."""
    first = segs[0]
    if first == "crate":
        return list(segs[1:])
    if first in ("super", "self"):
        depth = inline_depth(m, pos)
        base = list(m.path)
        rest = list(segs)
        while rest and rest[0] in ("super", "self"):
            if rest[0] == "super":
                if depth:
                    depth -= 1
                elif base:
                    base.pop()
            rest.pop(0)
        return base + rest
    if first in m.children:
        return list(m.path) + list(segs)
    return None


def collapse(path):
    return tuple(path[:2])


def deepest_module(modules, path):
    """The longest prefix of `path` that is a module, and what follows it."""
    for k in range(len(path), -1, -1):
        if tuple(path[:k]) in modules:
            return tuple(path[:k]), list(path[k:])
    return (), list(path)


def resolve(modules, reexports, path, seen=None):
    """The module that defines what `path` names, following re-exports."""
    seen = seen or set()
    mod, rest = deepest_module(modules, path)
    if rest and (mod, rest[0]) in reexports and (mod, rest[0]) not in seen:
        seen.add((mod, rest[0]))
        return resolve(modules, reexports, reexports[(mod, rest[0])] + rest[1:], seen)
    return mod


USE_RE = re.compile(r"(?m)^[ \t]*(pub(?:\([^)]*\))?\s+)?use\s+([^;]+);")
PATH_RE = re.compile(r"(?<![\w:])((?:crate|super|self)(?:::" + IDENT + r")+)")


def crate_graph(crate, root_rel, strict):
    crate_dir = os.path.join(ROOT, crate)
    modules = find_modules(crate_dir, root_rel)
    reexports = {}
    for m in modules.values():
        for u in USE_RE.finditer(m.code):
            is_pub = bool(u.group(1))
            for segs, bound in parse_use(u.group(2)):
                ab = absolute(m, segs, u.start())
                if ab is None:
                    continue
                line = line_of(m.code, u.start())
                m.uses.append((ab, bound, is_pub, line))
                if is_pub and bound and bound != "*" and inline_depth(m, u.start()) == 0:
                    reexports[(m.path, bound)] = ab
    edges = defaultdict(list)  # (from, to) -> [where]

    def add(m, target_path, line):
        src = collapse(m.path)
        dst = collapse(resolve(modules, reexports, target_path))
        if dst and src != dst and (strict or not (len(src) == 2 and dst == src[:1])):
            rel = os.path.relpath(m.file, ROOT)
            edges[(src, dst)].append(f"{rel}:{line}")

    for m in modules.values():
        code_wo_use = USE_RE.sub(lambda x: re.sub(r"[^\n]", " ", x.group(0)), m.code)
        for ab, bound, is_pub, line in m.uses:
            if is_pub and bound != "*" and inline_depth(m, 0) == 0:
                # A re-export is an import only if this module's own code uses the name.
                if not bound or not re.search(r"\b" + re.escape(bound) + r"\b", code_wo_use):
                    continue
            add(m, ab, line)
        for p in PATH_RE.finditer(code_wo_use):
            segs = p.group(1).split("::")
            ab = absolute(m, segs, p.start())
            if ab is not None:
                add(m, ab, line_of(m.code, p.start()))
        if m.children:
            child_re = re.compile(r"(?<![\w:])(" + "|".join(sorted(m.children)) + r")::(" + IDENT + r")")
            for p in child_re.finditer(code_wo_use):
                add(m, list(m.path) + [p.group(1), p.group(2)], line_of(m.code, p.start()))
    return edges


def sccs(nodes, adj):
    index, low, on, stack, out = {}, {}, set(), [], []
    counter = [0]

    def strong(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in adj[v]:
            if w not in index:
                strong(w)
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
            out.append(comp)

    sys.setrecursionlimit(10000)
    for v in sorted(nodes):
        if v not in index:
            strong(v)
    return out


def shortest_cycle_through(v, adj, comp):
    prev = {v: None}
    q = deque([v])
    while q:
        u = q.popleft()
        for w in sorted(adj[u]):
            if w not in comp:
                continue
            if w == v:
                path = [u]
                while prev[path[-1]] is not None:
                    path.append(prev[path[-1]])
                return list(reversed(path))
            if w not in prev:
                prev[w] = u
                q.append(w)
    return None


def name(mod):
    return "::".join(mod) or "(crate root)"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--crate", action="append", choices=sorted(CRATES), help="default: every crate")
    ap.add_argument(
        "--strict",
        action="store_true",
        help="also count a submodule's imports of its own parent (`super::X` in store/certs.rs)",
    )
    args = ap.parse_args()
    found = 0
    for crate in args.crate or sorted(CRATES):
        for root in CRATES[crate]:
            label = crate if len(CRATES[crate]) == 1 else f"{crate} ({root})"
            edges = crate_graph(crate, root, args.strict)
            adj = defaultdict(set)
            nodes = set()
            for a, b in edges:
                adj[a].add(b)
                nodes |= {a, b}
            cyclic = [sorted(c) for c in sccs(nodes, adj) if len(c) > 1]
            if not cyclic:
                print(f"{label}: no import cycles ({len(nodes)} modules, {len(edges)} imports)")
                continue
            for comp in sorted(cyclic):
                found += 1
                cs = set(comp)
                print(f"{label}: import cycle among {len(comp)} modules: {', '.join(name(c) for c in comp)}")
                cycles = set()
                for v in comp:
                    c = shortest_cycle_through(v, adj, cs)
                    if c:
                        k = c.index(min(c))
                        cycles.add(tuple(c[k:] + c[:k]))
                for c in sorted(cycles, key=lambda c: (len(c), c)):
                    print("  cycle: " + " -> ".join(name(x) for x in c + (c[0],)))
                for (a, b), where in sorted(edges.items()):
                    if a in cs and b in cs:
                        more = f" (+{len(where) - 3} more)" if len(where) > 3 else ""
                        print(f"    {name(a)} -> {name(b)}: {', '.join(where[:3])}{more}")
    sys.exit(1 if found else 0)


if __name__ == "__main__":
    main()
