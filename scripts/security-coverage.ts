// Keeps docs/security.md honest: every requirement ID it lists must be cited by at least one test
// title (unless its row is marked "planned"), every ID a test cites must be listed, and the
// coverage table at the end of the page must match the tests. `--check` (run by `npm test`) fails
// on any difference; without it the table is rewritten.
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const doc = join(root, 'docs/security.md');
const START = '<!-- coverage:start -->';
const END = '<!-- coverage:end -->';
const TEST_ROOTS = ['packages', 'apps', 'test', 'scripts'];
const TEST_FILE = /\.(test|spec)\.ts$/;
/** An ID such as L9, P1a or A10; not inside percent-encoding (`%A9t`) or a longer word (`ES256`). */
const ID = /(?<![%\w])([LSXPROBTAD])(\d{1,2})([a-z])?(?!\w)/g;
/** String literals: test titles and it.each rows are where tests cite IDs. */
const STRING = /'(?:\\.|[^'\\\n])*'|"(?:\\.|[^"\\\n])*"|`(?:\\.|[^`\\])*`/g;

interface Requirement {
  readonly id: string;
  readonly planned: boolean;
}

function listedRequirements(markdown: string): Requirement[] {
  const rows: Requirement[] = [];
  const head = markdown.split(START)[0] ?? '';
  for (const line of head.split('\n')) {
    const cells = line.split('|').map((c) => c.trim());
    const id = cells[1];
    if (!id || !/^[LSXPROBTAD]\d{1,2}[a-z]?$/.test(id)) continue;
    rows.push({ id, planned: (cells[3] ?? '') === 'planned' });
  }
  return rows;
}

async function testFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    if (entry.name === 'node_modules' || entry.name === 'dist' || entry.name.startsWith('.')) continue;
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...(await testFiles(path)));
    else if (TEST_FILE.test(entry.name)) out.push(path);
  }
  return out;
}

/** ID → test file → how many string literals of that file cite it. */
async function citations(): Promise<Map<string, Map<string, number>>> {
  const cited = new Map<string, Map<string, number>>();
  for (const top of TEST_ROOTS) {
    for (const file of await testFiles(join(root, top))) {
      const source = await readFile(file, 'utf8');
      const name = relative(root, file);
      for (const literal of source.match(STRING) ?? []) {
        for (const [, letter, number, suffix] of literal.matchAll(ID)) {
          const id = `${letter}${number}${suffix ?? ''}`;
          const files = cited.get(id) ?? new Map<string, number>();
          files.set(name, (files.get(name) ?? 0) + 1);
          cited.set(id, files);
        }
      }
    }
  }
  return cited;
}

function order(a: string, b: string): number {
  const key = (id: string) => [
    'LSXPROBTAD'.indexOf(id[0] ?? ''),
    Number.parseInt(id.slice(1), 10),
    id.replace(/^[A-Z]\d+/, ''),
  ];
  const [ka, kb] = [key(a), key(b)];
  for (let i = 0; i < ka.length; i++) {
    if (ka[i]! < kb[i]!) return -1;
    if (ka[i]! > kb[i]!) return 1;
  }
  return 0;
}

function coverageTable(requirements: Requirement[], cited: Map<string, Map<string, number>>): string {
  const lines = ['| ID | tests citing it (file: titles) |', '|---|---|'];
  for (const { id, planned } of [...requirements].sort((a, b) => order(a.id, b.id))) {
    const files = cited.get(id);
    const cell = files
      ? [...files.entries()]
          .sort(([a], [b]) => a.localeCompare(b))
          .map(([file, count]) => `\`${file}\`: ${count}`)
          .join('<br>')
      : planned
        ? 'planned — no test yet'
        : '**none**';
    lines.push(`| ${id} | ${cell} |`);
  }
  return lines.join('\n');
}

const markdown = await readFile(doc, 'utf8');
if (!markdown.includes(START) || !markdown.includes(END)) {
  throw new Error(`docs/security.md lacks the ${START} … ${END} markers`);
}
const requirements = listedRequirements(markdown);
const known = new Set(requirements.map((r) => r.id));
const cited = await citations();
const problems: string[] = [];
for (const { id, planned } of requirements) {
  if (!planned && !cited.has(id)) problems.push(`${id} is listed in docs/security.md but no test cites it`);
}
for (const [id, files] of cited) {
  if (!known.has(id))
    problems.push(`${id} is cited by ${[...files.keys()].join(', ')} but not listed in docs/security.md`);
}
const table = coverageTable(requirements, cited);
const [before] = markdown.split(START);
const after = markdown.slice(markdown.indexOf(END));
const next = `${before}${START}\n${table}\n${after}`;

if (process.argv.includes('--check')) {
  if (next !== markdown) problems.push('the coverage table is stale: run `npm run security:coverage`');
  if (problems.length > 0) {
    for (const problem of problems) console.error(`\u2716 ${problem}`);
    process.exit(1);
  }
  console.log(`security coverage: ${requirements.length} requirements, every one cited by its tests`);
} else {
  await writeFile(doc, next);
  for (const problem of problems) console.error(`! ${problem}`);
  console.log(`docs/security.md: coverage table rewritten (${requirements.length} requirements)`);
  if (problems.length > 0) process.exit(1);
}
