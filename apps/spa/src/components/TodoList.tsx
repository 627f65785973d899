import { type FormEvent, useCallback, useEffect, useState } from 'react';
import { todos as api, BffCallError } from '../api/bff';
import type { Todo } from '../api/types';

interface TodoListProps {
  /** A call came back 401: the BFF session is gone. */
  onSessionEnded: () => void;
}

type ListState =
  | { status: 'loading' }
  | { status: 'ready'; items: Todo[] }
  | { status: 'error'; message: string; upstream: boolean };

function describe(error: unknown): { message: string; upstream: boolean } {
  if (error instanceof BffCallError) {
    if (error.kind === 'upstream') {
      return {
        message: `The API behind the BFF is unavailable (HTTP ${error.status}). Your session is fine; try again in a moment.`,
        upstream: true,
      };
    }
    if (error.kind === 'network') return { message: 'The BFF could not be reached.', upstream: false };
    return { message: `The request failed (HTTP ${error.status}): ${error.message}`, upstream: false };
  }
  return { message: 'Something unexpected went wrong.', upstream: false };
}

export function TodoList({ onSessionEnded }: TodoListProps) {
  const [state, setState] = useState<ListState>({ status: 'loading' });
  const [title, setTitle] = useState('');
  const [adding, setAdding] = useState(false);
  const [busyIds, setBusyIds] = useState<ReadonlySet<string>>(new Set());
  const [actionError, setActionError] = useState<string | null>(null);

  /** 401 hands over to the app (signed-out screen); anything else is shown here. */
  const handle = useCallback(
    (error: unknown): string | null => {
      if (error instanceof BffCallError && error.kind === 'signed-out') {
        onSessionEnded();
        return null;
      }
      return describe(error).message;
    },
    [onSessionEnded],
  );

  const load = useCallback(async () => {
    setState({ status: 'loading' });
    try {
      setState({ status: 'ready', items: await api.list() });
    } catch (error) {
      if (error instanceof BffCallError && error.kind === 'signed-out') return onSessionEnded();
      setState({ status: 'error', ...describe(error) });
    }
  }, [onSessionEnded]);

  useEffect(() => {
    void load();
  }, [load]);

  const withBusy = async (id: string, work: () => Promise<void>) => {
    setBusyIds((ids) => new Set(ids).add(id));
    setActionError(null);
    try {
      await work();
    } catch (error) {
      setActionError(handle(error));
    } finally {
      setBusyIds((ids) => {
        const next = new Set(ids);
        next.delete(id);
        return next;
      });
    }
  };

  const onAdd = async (event: FormEvent<HTMLFormElement>) => {
    event.preventDefault();
    const trimmed = title.trim();
    if (!trimmed) return;
    setAdding(true);
    setActionError(null);
    try {
      const created = await api.add(trimmed);
      setState((s) => (s.status === 'ready' ? { status: 'ready', items: [...s.items, created] } : s));
      setTitle('');
    } catch (error) {
      setActionError(handle(error));
    } finally {
      setAdding(false);
    }
  };

  const replace = (updated: Todo) =>
    setState((s) =>
      s.status === 'ready'
        ? { status: 'ready', items: s.items.map((t) => (t.id === updated.id ? updated : t)) }
        : s,
    );

  // Optimistic: the checkbox flips at once and flips back if the API refuses.
  const onToggle = (todo: Todo) =>
    withBusy(todo.id, async () => {
      replace({ ...todo, done: !todo.done });
      try {
        replace(await api.update(todo.id, { done: !todo.done }));
      } catch (error) {
        replace(todo);
        throw error;
      }
    });

  const onDelete = (todo: Todo) =>
    withBusy(todo.id, async () => {
      await api.remove(todo.id);
      setState((s) =>
        s.status === 'ready' ? { status: 'ready', items: s.items.filter((t) => t.id !== todo.id) } : s,
      );
    });

  const remaining = state.status === 'ready' ? state.items.filter((t) => !t.done).length : 0;

  return (
    <section className="card" aria-labelledby="todos-title" data-testid="todos">
      <div className="card-head">
        <h2 id="todos-title">Your todos</h2>
        <div className="card-head-actions">
          {state.status === 'ready' && (
            <span className="muted small" data-testid="todo-count">
              {remaining} open · {state.items.length} total
            </span>
          )}
          <button
            type="button"
            className="button button-ghost button-small"
            onClick={() => void load()}
            disabled={state.status === 'loading'}
            data-testid="reload-todos"
          >
            Reload
          </button>
        </div>
      </div>
      <p className="muted small">
        Stored by the sample API per user. The browser calls <code>/api/todos</code> on this origin; the BFF
        forwards it with your access token.
      </p>

      <form className="add-form" onSubmit={(event) => void onAdd(event)}>
        <label htmlFor="new-todo" className="sr-only">
          New todo
        </label>
        <input
          id="new-todo"
          type="text"
          value={title}
          onChange={(event) => setTitle(event.target.value)}
          placeholder="What needs doing?"
          maxLength={200}
          autoComplete="off"
          disabled={state.status !== 'ready' || adding}
          data-testid="new-todo"
        />
        <button
          type="submit"
          className="button button-primary"
          disabled={state.status !== 'ready' || adding || !title.trim()}
          data-testid="add-todo"
        >
          {adding ? 'Adding…' : 'Add'}
        </button>
      </form>

      {actionError && (
        <p className="notice notice-error" role="alert" data-testid="todo-action-error">
          {actionError}
        </p>
      )}

      {state.status === 'loading' && (
        <ul className="todo-list" aria-busy="true" data-testid="todos-loading">
          {[0, 1, 2].map((i) => (
            <li key={i} className="todo skeleton" aria-hidden="true">
              <span className="skeleton-box" />
              <span className="skeleton-line" />
            </li>
          ))}
          <li className="sr-only">Loading your todos…</li>
        </ul>
      )}

      {state.status === 'error' && (
        <div
          className={state.upstream ? 'notice notice-error big' : 'notice notice-error'}
          role="alert"
          data-testid="todos-error"
        >
          <strong>Could not load your todos.</strong>
          <span>{state.message}</span>
          <button type="button" className="button button-small" onClick={() => void load()}>
            Try again
          </button>
        </div>
      )}

      {state.status === 'ready' && state.items.length === 0 && (
        <p className="empty" data-testid="todos-empty">
          Nothing here yet. Add your first todo above.
        </p>
      )}

      {state.status === 'ready' && state.items.length > 0 && (
        <ul className="todo-list" data-testid="todo-list">
          {state.items.map((todo) => {
            const busy = busyIds.has(todo.id);
            const inputId = `todo-${todo.id}`;
            return (
              <li
                key={todo.id}
                className={todo.done ? 'todo done' : 'todo'}
                data-testid="todo-item"
                aria-busy={busy}
              >
                <input
                  id={inputId}
                  type="checkbox"
                  checked={todo.done}
                  disabled={busy}
                  onChange={() => void onToggle(todo)}
                  data-testid="todo-toggle"
                />
                <label htmlFor={inputId} className="todo-title" data-testid="todo-title">
                  {todo.title}
                </label>
                <button
                  type="button"
                  className="icon-button"
                  onClick={() => void onDelete(todo)}
                  disabled={busy}
                  aria-label={`Delete “${todo.title}”`}
                  data-testid="todo-delete"
                >
                  <svg viewBox="0 0 20 20" width="18" height="18" aria-hidden="true">
                    <path
                      d="M7 3h6m-9 3h12m-2 0-.7 10.2a1.5 1.5 0 0 1-1.5 1.3H8.2a1.5 1.5 0 0 1-1.5-1.3L6 6m3 3v5m2-5v5"
                      fill="none"
                      stroke="currentColor"
                      strokeWidth="1.6"
                      strokeLinecap="round"
                      strokeLinejoin="round"
                    />
                  </svg>
                </button>
              </li>
            );
          })}
        </ul>
      )}
    </section>
  );
}
