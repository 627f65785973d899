// Pulls the TypeScript examples out of a README so the smoke test can type-check them against the
// published packages. Every ```ts block is one self-contained module; a block fenced as
// ```ts fragment is prose-only (shown, not compiled) — use it sparingly.

/** The ```ts / ```typescript code blocks of a Markdown text, each as module source. */
export function extractReadmeExamples(markdown: string): string[] {
  const examples: string[] = [];
  const fence = /^```(ts|typescript)([^\n]*)\n([\s\S]*?)^```/gm;
  for (const match of markdown.matchAll(fence)) {
    const info = (match[2] ?? '').trim();
    if (info.split(/\s+/).includes('fragment')) continue;
    // `export {}` makes each block a module, so top-level await and local names are allowed.
    examples.push(`${match[3] ?? ''}\nexport {};\n`);
  }
  return examples;
}
