// The in-memory todo store, one list per user (`sub`), plus the input checks for its routes.
import { randomUUID } from 'node:crypto';

/** A todo as the API returns it (matches the SPA's `Todo`). */
export interface Todo {
  id: string;
  title: string;
  done: boolean;
  createdAt: string;
  updatedAt: string;
}

/** Why an input was refused; the route turns it into a 400 with this description. */
export class TodoInputError extends Error {
  override readonly name = 'TodoInputError';
}

const MAX_TITLE = 200;
// Control characters have no business in a title and make logs and UIs misbehave.
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching them is the point.
const CONTROL = /[\u0000-\u001f\u007f]/;

function checkTitle(value: unknown): string {
  if (typeof value !== 'string') throw new TodoInputError('"title" must be a string');
  const title = value.trim();
  if (title.length === 0) throw new TodoInputError('"title" must not be empty');
  if (title.length > MAX_TITLE) throw new TodoInputError(`"title" must be at most ${MAX_TITLE} characters`);
  if (CONTROL.test(title)) throw new TodoInputError('"title" must not contain control characters');
  return title;
}

function checkObject(body: unknown, allowed: readonly string[]): Record<string, unknown> {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new TodoInputError('the body must be a JSON object');
  }
  for (const key of Object.keys(body)) {
    if (!allowed.includes(key))
      throw new TodoInputError(`unknown field "${key}"; allowed: ${allowed.join(', ')}`);
  }
  return body as Record<string, unknown>;
}

/** Parses a create body: `{ title: string, done?: boolean }`. */
export function parseCreate(body: unknown): { title: string; done: boolean } {
  const input = checkObject(body, ['title', 'done']);
  if (input.done !== undefined && typeof input.done !== 'boolean')
    throw new TodoInputError('"done" must be a boolean');
  return { title: checkTitle(input.title), done: input.done === true };
}

/** Parses an update body: `{ title?: string, done?: boolean }`, at least one of them. */
export function parseUpdate(body: unknown): { title?: string; done?: boolean } {
  const input = checkObject(body, ['title', 'done']);
  const patch: { title?: string; done?: boolean } = {};
  if (input.title !== undefined) patch.title = checkTitle(input.title);
  if (input.done !== undefined) {
    if (typeof input.done !== 'boolean') throw new TodoInputError('"done" must be a boolean');
    patch.done = input.done;
  }
  if (patch.title === undefined && patch.done === undefined) {
    throw new TodoInputError('send at least one of "title" and "done"');
  }
  return patch;
}

/** Per-user todo lists in memory. A user only ever reaches their own list. */
export class TodoStore {
  readonly #lists = new Map<string, Map<string, Todo>>();
  readonly #maxPerUser: number;
  readonly #now: () => number;

  constructor(options: { maxPerUser: number; clock?: () => number }) {
    this.#maxPerUser = options.maxPerUser;
    this.#now = options.clock ?? Date.now;
  }

  list(owner: string): Todo[] {
    return [...(this.#lists.get(owner)?.values() ?? [])];
  }

  /** @throws TodoInputError when the user already has the maximum number of todos. */
  create(owner: string, input: { title: string; done: boolean }): Todo {
    let list = this.#lists.get(owner);
    if (!list) {
      list = new Map();
      this.#lists.set(owner, list);
    }
    if (list.size >= this.#maxPerUser)
      throw new TodoInputError(`a user may keep at most ${this.#maxPerUser} todos`);
    const at = new Date(this.#now()).toISOString();
    const todo: Todo = {
      id: randomUUID(),
      title: input.title,
      done: input.done,
      createdAt: at,
      updatedAt: at,
    };
    list.set(todo.id, todo);
    return { ...todo };
  }

  /** Returns the updated todo, or undefined when the owner has no todo with this id. */
  update(owner: string, id: string, patch: { title?: string; done?: boolean }): Todo | undefined {
    const todo = this.#lists.get(owner)?.get(id);
    if (!todo) return undefined;
    if (patch.title !== undefined) todo.title = patch.title;
    if (patch.done !== undefined) todo.done = patch.done;
    todo.updatedAt = new Date(this.#now()).toISOString();
    return { ...todo };
  }

  /** True when the owner had a todo with this id. */
  remove(owner: string, id: string): boolean {
    return this.#lists.get(owner)?.delete(id) ?? false;
  }

  /** Totals across all users, for the machine report (no per-user data). */
  totals(): { users: number; todos: number; done: number } {
    let todos = 0;
    let done = 0;
    let users = 0;
    for (const list of this.#lists.values()) {
      if (list.size > 0) users++;
      for (const todo of list.values()) {
        todos++;
        if (todo.done) done++;
      }
    }
    return { users, todos, done };
  }
}
