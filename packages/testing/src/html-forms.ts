// A small, forgiving HTML form parser for server-rendered test pages (the sample IdP's login and
// consent pages, form_post responses): what a browser would submit, and whether a form submits itself.

/** A parsed HTML form. */
export interface ParsedForm {
  /** Absolute action URL. */
  action: string;
  method: 'GET' | 'POST';
  /** `name` → `value` of every input/select/textarea with a name (last one wins). */
  fields: Record<string, string>;
  /** True for forms that submit themselves (`data-autosubmit`, or `document.forms[0].submit()`). */
  autoSubmit: boolean;
  id: string | undefined;
}

const ENTITIES: Record<string, string> = {
  amp: '&',
  lt: '<',
  gt: '>',
  quot: '"',
  apos: "'",
  '#39': "'",
  nbsp: '\u00a0',
};

function decodeEntities(value: string): string {
  return value.replace(/&(#x[0-9a-f]+|#\d+|[a-z]+);/gi, (whole, name: string) => {
    if (name[0] === '#') {
      const code =
        name[1] === 'x' || name[1] === 'X' ? Number.parseInt(name.slice(2), 16) : Number(name.slice(1));
      return Number.isFinite(code) ? String.fromCodePoint(code) : whole;
    }
    return ENTITIES[name.toLowerCase()] ?? whole;
  });
}

function attributes(tag: string): Record<string, string> {
  const out: Record<string, string> = {};
  const re = /([^\s"'<>/=]+)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'=<>`]+)))?/g;
  // Skip the tag name itself.
  const body = tag.replace(/^<\s*[a-z0-9]+/i, '').replace(/\/?>$/, '');
  for (const m of body.matchAll(re)) {
    const name = m[1]!.toLowerCase();
    if (!(name in out)) out[name] = decodeEntities(m[2] ?? m[3] ?? m[4] ?? '');
  }
  return out;
}

/**
 * Parses the forms of an HTML page (a small, forgiving parser for server-rendered test pages:
 * inputs, selects with a selected option, textareas; hidden and visible fields alike).
 */
export function parseForms(html: string, pageUrl: string | URL): ParsedForm[] {
  const pageScriptSubmits = /document\.forms\[0\]\.submit\(\)/.test(html);
  const forms: ParsedForm[] = [];
  const formRe = /<form\b[^>]*>([\s\S]*?)<\/form>/gi;
  let index = 0;
  for (const match of html.matchAll(formRe)) {
    const openTag = /^<form\b[^>]*>/i.exec(match[0])![0];
    const attrs = attributes(openTag);
    const inner = match[1] ?? '';
    const fields: Record<string, string> = {};
    for (const input of inner.matchAll(/<input\b[^>]*>/gi)) {
      const a = attributes(input[0]);
      if (!a.name) continue;
      const type = (a.type ?? 'text').toLowerCase();
      if ((type === 'checkbox' || type === 'radio') && !('checked' in a)) continue;
      if (type === 'submit' || type === 'button' || type === 'image' || type === 'reset') continue;
      fields[a.name] = a.value ?? (type === 'checkbox' ? 'on' : '');
    }
    for (const ta of inner.matchAll(/<textarea\b([^>]*)>([\s\S]*?)<\/textarea>/gi)) {
      const a = attributes(`<textarea ${ta[1]}>`);
      if (a.name) fields[a.name] = decodeEntities(ta[2] ?? '');
    }
    for (const sel of inner.matchAll(/<select\b([^>]*)>([\s\S]*?)<\/select>/gi)) {
      const a = attributes(`<select ${sel[1]}>`);
      if (!a.name) continue;
      const options = [
        ...(sel[2] ?? '').matchAll(/<option\b([^>]*)>([\s\S]*?)(?:<\/option>|(?=<option)|$)/gi),
      ];
      const chosen = options.find((o) => /\bselected\b/i.test(o[1] ?? '')) ?? options[0];
      if (chosen) {
        const oa = attributes(`<option ${chosen[1]}>`);
        fields[a.name] = oa.value ?? decodeEntities((chosen[2] ?? '').trim());
      }
    }
    const method = (attrs.method ?? 'GET').toUpperCase() === 'POST' ? 'POST' : 'GET';
    forms.push({
      action: new URL(attrs.action || String(pageUrl), pageUrl).href,
      method,
      fields,
      autoSubmit: 'data-autosubmit' in attrs || (pageScriptSubmits && index === 0),
      id: attrs.id,
    });
    index += 1;
  }
  return forms;
}
