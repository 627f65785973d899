// Compares two V8 heap snapshots of one process (the soak's SOAK_HEAP_SNAPSHOTS, or any two
// .heapsnapshot files taken from the same running process):
//
//   node --import tsx test/soak/heap-diff.ts baseline.heapsnapshot end.heapsnapshot [top=25] [paths=8]
//
// Prints the groups (constructor name for objects, node type and name for the rest) whose self size
// grew most, with how many of the end snapshot's objects were born after the baseline (V8 keeps an
// object's id for the life of the process while a profiler is attached, so "id not in the baseline"
// means "allocated since and still live"). Then the newborn objects grouped by the first older object
// on their shortest path from the GC roots (the cache, list or pool gathering them), and for the
// `paths` biggest of those holders, that path. Strings are shown
// with long base64url-looking runs shortened, so tokens and cookie values do not land in the output.
// Self sizes only: retained sizes would need a dominator tree, and the newborn counts plus the paths
// and their holders already say what is piling up.
//
// Reading it: growth in (code) and (hidden) system / WeakArrayList (the dependent-code lists of object
// shapes) is the optimizing compiler still at work minutes into a run: optimized code and its deopt
// data for functions that already exist (the count of system / BytecodeArray stays put). It is bounded
// by the program and levels off; in the first soaks it was nearly all of the heap's growth. State kept
// per session shows up as newborn strings (ids, cookie values) and Maps under a cache.
import { readFileSync } from 'node:fs';

interface Snapshot {
  snapshot: {
    meta: {
      node_fields: string[];
      node_types: [string[], ...unknown[]];
      edge_fields: string[];
      edge_types: [string[], ...unknown[]];
    };
  };
  nodes: number[];
  edges: number[];
  strings: string[];
}

/** One parsed snapshot, with the accessors the comparison needs. */
function load(path: string) {
  const raw = JSON.parse(readFileSync(path, 'utf8')) as Snapshot;
  const { meta } = raw.snapshot;
  const nodeWidth = meta.node_fields.length;
  const edgeWidth = meta.edge_fields.length;
  const field = (name: string) => meta.node_fields.indexOf(name);
  const [TYPE, NAME, ID, SIZE, EDGES] = ['type', 'name', 'id', 'self_size', 'edge_count'].map(field) as [
    number,
    number,
    number,
    number,
    number,
  ];
  const nodeTypes = meta.node_types[0];
  const edgeTypes = meta.edge_types[0];
  const { nodes, edges, strings } = raw;
  const count = nodes.length / nodeWidth;
  // Where each node's edges start (edges are stored node after node).
  const firstEdge = new Uint32Array(count + 1);
  for (let n = 0; n < count; n++)
    firstEdge[n + 1] = firstEdge[n]! + nodes[n * nodeWidth + EDGES]! * edgeWidth;

  const type = (n: number) => nodeTypes[nodes[n * nodeWidth + TYPE]!]!;
  const name = (n: number) => strings[nodes[n * nodeWidth + NAME]!]!;
  const group = (n: number) => {
    const t = type(n);
    if (t === 'object' || t === 'native') return name(n);
    if (t === 'string' || t === 'concatenated string' || t === 'sliced string') return '(string)';
    if (t === 'number' || t === 'code' || t === 'object shape') return `(${t})`;
    return `(${t}) ${name(n)}`;
  };
  return {
    count,
    id: (n: number) => nodes[n * nodeWidth + ID]!,
    size: (n: number) => nodes[n * nodeWidth + SIZE]!,
    type,
    name,
    group,
    /** The edges of node n as [edge type, edge name or index, target node]. */
    *edgesOf(n: number): Generator<[string, string | number, number]> {
      for (let e = firstEdge[n]!; e < firstEdge[n + 1]!; e += edgeWidth) {
        const edgeType = edgeTypes[edges[e]!]!;
        const nameOrIndex = edges[e + 1]!;
        const label = edgeType === 'element' || edgeType === 'hidden' ? nameOrIndex : strings[nameOrIndex]!;
        yield [edgeType, label, edges[e + 2]! / nodeWidth];
      }
    },
  };
}

const shown = (text: string) => {
  const short = text.replace(/[A-Za-z0-9_\-+/=.%]{24,}/g, (run) => `…(${run.length})`);
  return JSON.stringify(short.length > 60 ? `${short.slice(0, 60)}…` : short);
};

function main() {
  const [beforePath, afterPath, topArg, pathsArg] = process.argv.slice(2);
  if (!beforePath || !afterPath) {
    console.error('usage: heap-diff.ts <baseline.heapsnapshot> <end.heapsnapshot> [top=25] [paths=8]');
    process.exit(2);
  }
  const top = Number(topArg ?? 25);
  const pathsFor = Number(pathsArg ?? 8);
  const before = load(beforePath);
  const seen = new Set<number>();
  const totals = new Map<string, { count: number; size: number; newCount: number; newSize: number }>();
  const entry = (g: string) => {
    let e = totals.get(g);
    if (!e) {
      e = { count: 0, size: 0, newCount: 0, newSize: 0 };
      totals.set(g, e);
    }
    return e;
  };
  let beforeSize = 0;
  for (let n = 0; n < before.count; n++) {
    seen.add(before.id(n));
    const e = entry(before.group(n));
    e.count--;
    e.size -= before.size(n);
    beforeSize += before.size(n);
  }
  const after = load(afterPath);
  let afterSize = 0;
  // Newborn strings by (shortened) value: which kinds of string pile up.
  const newStrings = new Map<string, { count: number; size: number }>();
  for (let n = 0; n < after.count; n++) {
    const e = entry(after.group(n));
    e.count++;
    e.size += after.size(n);
    afterSize += after.size(n);
    if (!seen.has(after.id(n))) {
      e.newCount++;
      e.newSize += after.size(n);
      if (after.type(n) === 'string') {
        const key = shown(after.name(n));
        const s = newStrings.get(key) ?? { count: 0, size: 0 };
        s.count++;
        s.size += after.size(n);
        newStrings.set(key, s);
      }
    }
  }
  const kb = (bytes: number) => `${(bytes / 1024).toFixed(1)} KB`;
  console.log(
    `self size of all nodes: ${kb(beforeSize)} → ${kb(afterSize)} (${afterSize >= beforeSize ? '+' : ''}${kb(afterSize - beforeSize)})\n`,
  );
  const rows = [...totals].sort((a, b) => b[1].size - a[1].size).slice(0, top);
  console.log('  Δ self size |  Δ count | newborn (count, size) | group');
  for (const [g, e] of rows) {
    console.log(
      `${kb(e.size).padStart(13)} | ${String(e.count).padStart(8)} | ${String(e.newCount).padStart(7)} ${kb(e.newSize).padStart(12)} | ${g.slice(0, 80)}`,
    );
  }
  console.log('\nnewborn strings, most total size first (long runs shortened):');
  for (const [value, s] of [...newStrings].sort((a, b) => b[1].size - a[1].size).slice(0, top)) {
    console.log(`${kb(s.size).padStart(10)} ${String(s.count).padStart(6)}× ${value}`);
  }

  // Retainer paths: breadth-first from the root (node 0) over strong edges, so each node's parent is
  // on a shortest strong path from the GC roots.
  const parent = new Int32Array(after.count).fill(-1);
  const via = new Array<string>(after.count);
  parent[0] = 0;
  const queue = [0];
  for (let head = 0; head < queue.length; head++) {
    const n = queue[head]!;
    for (const [edgeType, label, to] of after.edgesOf(n)) {
      if (edgeType === 'weak' || edgeType === 'shortcut' || parent[to] !== -1) continue;
      parent[to] = n;
      via[to] = edgeType === 'element' ? `[${label}]` : `.${String(label)}`;
      queue.push(to);
    }
  }
  // Each newborn object is charged to the first object on its path that is older than the baseline:
  // an old structure gathering new objects is what grows (a cache, a list, a pool).
  // Synthetic nodes (root groups, the embedder's native wrappers) get new ids in every snapshot.
  const isNew = (n: number) => after.type(n) !== 'synthetic' && !seen.has(after.id(n));
  const holder = new Int32Array(after.count).fill(-1);
  const intoHolder = new Array<string>(after.count);
  const holders = new Map<number, { edges: Set<string>; count: number; size: number }>();
  for (const n of queue) {
    if (n === 0 || !isNew(n)) continue;
    const p = parent[n]!;
    const old = !isNew(p);
    holder[n] = old ? p : holder[p]!;
    intoHolder[n] = old ? via[n]!.replace(/^\[\d+\]$/, '[…]') : intoHolder[p]!;
    const h = holders.get(holder[n]!) ?? { edges: new Set<string>(), count: 0, size: 0 };
    h.edges.add(intoHolder[n]!);
    h.count++;
    h.size += after.size(n);
    holders.set(holder[n]!, h);
  }
  const describe = (n: number) =>
    after.type(n) === 'string' ? `(string) ${shown(after.name(n))}` : after.group(n).slice(0, 50);
  const pathTo = (target: number) => {
    const chain: string[] = [];
    for (let n = target; n !== 0 && chain.length < 40; n = parent[n]!)
      chain.unshift(`${via[n]} → ${describe(n)}`);
    return chain;
  };
  const byHolder = [...holders].sort((a, b) => b[1].size - a[1].size);
  console.log('\nnewborn objects by the older object holding them (self sizes of everything born below it):');
  for (const [h, e] of byHolder.slice(0, top)) {
    const edges = [...e.edges].slice(0, 3).join(' ');
    console.log(
      `${kb(e.size).padStart(10)} ${String(e.count).padStart(6)}× | ${describe(parent[h]!)} ${via[h]} → ${describe(h)} ${edges}`.slice(
        0,
        160,
      ),
    );
  }
  console.log('\nwhere those holders are (root first):');
  for (const [h, e] of byHolder.slice(0, pathsFor)) {
    console.log(`\n${kb(e.size)} under ${describe(h)}:`);
    for (const step of pathTo(h)) console.log(`    ${step}`);
  }
}

main();
