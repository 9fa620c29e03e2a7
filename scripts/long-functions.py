#!/usr/bin/env python3
"""Functions longer than a screen: every `fn` in the given source directories whose body runs over
`--max` lines (TigerBeetle's 70 by default), longest first, counted from the `fn` line to its
closing brace. Python 3, standard library only.

Usage: scripts/long-functions.py [--max 70] [DIR ...]   (default: core/src)
"""

import argparse
import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FN = re.compile(r"^\s*(?:pub(?:\([^)]*\))?\s+)?(?:const\s+)?(?:async\s+)?(?:unsafe\s+)?fn\s+(\w+)")


def code_of(line):
    line = re.sub(r'"(\\.|[^"\\])*"', '""', line)
    line = re.sub(r"'(\\.|[^'\\])'", "''", line)
    return line.split("//")[0]


def functions(path):
    lines = open(path, encoding="utf-8").read().split("\n")
    for i, line in enumerate(lines):
        m = FN.match(line)
        if not m:
            continue
        depth, opened = 0, False
        for j in range(i, len(lines)):
            code = code_of(lines[j])
            if not opened and ";" in code and "{" not in code:
                break  # a declaration without a body (a trait's)
            depth += code.count("{") - code.count("}")
            opened = opened or "{" in code
            if opened and depth <= 0:
                yield m.group(1), i + 1, j - i + 1
                break


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--max", type=int, default=70)
    ap.add_argument("dirs", nargs="*", default=["core/src"])
    args = ap.parse_args()
    found = []
    for d in args.dirs:
        for root, _, files in os.walk(os.path.join(ROOT, d)):
            for f in files:
                if f.endswith(".rs"):
                    path = os.path.join(root, f)
                    for name, line, length in functions(path):
                        if length > args.max:
                            found.append((length, os.path.relpath(path, ROOT), line, name))
    for length, path, line, name in sorted(found, reverse=True):
        print(f"{length:5}  {path}:{line}  {name}")
    print(f"{len(found)} functions over {args.max} lines")


if __name__ == "__main__":
    main()
