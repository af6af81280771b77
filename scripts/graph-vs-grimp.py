#!/usr/bin/env python3
"""The Python import graph of `dreamos graph` beside grimp's (pip install grimp), edge for edge.

    python3 scripts/graph-vs-grimp.py asyncio target/release/dreamos
    python3 scripts/graph-vs-grimp.py email target/release/dreamos

The package (importable by this python3) is copied with its parent directory's layout into a
temporary tree, indexed there as a workspace, and its module-level edges (inside the package,
self-edges left out) are compared with grimp's direct imports of the same package.
"""
import importlib, json, os, shutil, subprocess, sys, tempfile

import grimp

pkg, binary = sys.argv[1], sys.argv[2]
root = os.path.dirname(importlib.import_module(pkg).__file__)
graph = grimp.build_graph(pkg, include_external_packages=False, cache_dir=None)
theirs = {(m, i) for m in graph.modules for i in graph.find_modules_directly_imported_by(m)}


def module(path):
    rel = path[len(pkg) + 1:-3].replace("/", ".")
    rel = "" if rel == "__init__" else rel.removesuffix(".__init__")
    return pkg + ("." + rel if rel else "")


tmp = tempfile.mkdtemp()
tree = os.path.join(tmp, pkg)
shutil.copytree(root, tree, ignore=shutil.ignore_patterns("__pycache__"))
data = os.path.join(tmp, "data")
subprocess.run([binary, "--data-dir", data, "index", tmp, "--name", pkg], check=True, capture_output=True)
out = subprocess.run([binary, "--data-dir", data, "graph", tree, "--format", "json"], check=True, capture_output=True).stdout
ours = set()
for e in json.loads(out)["edges"]:
    if e["from"].startswith(pkg + "/") and e["to"].startswith(pkg + "/"):
        a, b = module(e["from"]), module(e["to"])
        if a != b:
            ours.add((a, b))
shutil.rmtree(tmp)
print(f"{pkg}: grimp {len(theirs)} edges, dreamos {len(ours)}; both {len(theirs & ours)}, "
      f"only grimp {len(theirs - ours)}, only dreamos {len(ours - theirs)}")
for edge in sorted(theirs - ours)[:10]:
    print("  only grimp:", *edge)
for edge in sorted(ours - theirs)[:10]:
    print("  only dreamos:", *edge)
sys.exit(0 if theirs == ours else 1)
