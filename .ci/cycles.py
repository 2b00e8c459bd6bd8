"""Reports import cycles between the crate's modules (a `use crate::…`, `super::…` or a doc link
to another module counts; a module and its own submodules do not). Exits 1 when there is one.

Usage: python3 .ci/cycles.py src
"""
import os, re, sys, collections
root = sys.argv[1] if len(sys.argv) > 1 else 'src'
# module path for each file: src/a/b.rs -> a::b ; src/a/mod.rs -> a ; src/lib.rs -> crate
def modpath(f):
    rel = os.path.relpath(f, root)[:-3].split(os.sep)
    if rel[-1] in ('mod', 'lib'): rel = rel[:-1]
    return '::'.join(rel) or 'crate'
files = []
for d, _, fs in os.walk(root):
    for f in fs:
        if f.endswith('.rs') and f != 'main.rs': files.append(os.path.join(d, f))
mods = {modpath(f): f for f in files}
def resolve(cur, path):
    # path like crate::a::b::C or super::x or self::y
    parts = path.split('::')
    if parts[0] == 'crate': base = []; parts = parts[1:]
    elif parts[0] == 'super':
        base = cur.split('::')[:-1] if cur != 'crate' else []
        # if the file is a mod.rs, super of `a` (module a) is parent of a
        parts = parts[1:]
        while parts and parts[0] == 'super': base = base[:-1]; parts = parts[1:]
    elif parts[0] == 'self': base = cur.split('::') if cur!='crate' else []; parts = parts[1:]
    else: return None
    # longest prefix that is a module
    best = None
    for i in range(len(parts), -1, -1):
        cand = '::'.join(base + parts[:i]) or 'crate'
        if cand in mods: best = cand; break
    return best
edges = collections.defaultdict(set)
for m, f in mods.items():
    text = open(f).read()
    # strip test modules roughly
    text = re.split(r'#\[cfg\(test\)\]\s*mod tests', text)[0]
    for u in re.findall(r'\b((?:crate|super|self)(?:::[A-Za-z_][A-Za-z0-9_]*)+)', text):
        t = resolve(m, u)
        if t and t != m and not m.startswith(t + '::') and not t.startswith(m + '::') :
            edges[m].add(t)
# Tarjan SCC
idx = {}; low = {}; st = []; on = set(); sccs = []; c = [0]
sys.setrecursionlimit(10000)
def sc(v):
    idx[v] = low[v] = c[0]; c[0] += 1; st.append(v); on.add(v)
    for w in edges.get(v, ()):
        if w not in idx: sc(w); low[v] = min(low[v], low[w])
        elif w in on: low[v] = min(low[v], idx[w])
    if low[v] == idx[v]:
        comp = []
        while True:
            w = st.pop(); on.discard(w); comp.append(w)
            if w == v: break
        if len(comp) > 1: sccs.append(sorted(comp))
for v in list(mods):
    if v not in idx: sc(v)
for s in sccs: print('import cycle:', ' -> '.join(s))
if not sccs: print('no import cycles')
sys.exit(1 if sccs else 0)
