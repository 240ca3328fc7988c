// Small pieces every page uses: status badges with the error on hover, problems as the CLI prints them, times,
// sizes, links to a run in the Temporal UI, and a modal dialog on the browser's own <dialog>.
import type { ComponentChildren } from 'preact';
import { useEffect, useId, useRef } from 'preact/hooks';
import type { Problem } from './api';

/** A state as a coloured word; with an error, the badge is focusable and shows it on hover and on focus. */
export function StatusBadge(props: { status: string; error?: string | null }) {
  const tip = useId();
  if (!props.error) return <span class={`badge badge-${props.status}`}>{props.status}</span>;
  return (
    <span class="has-tip">
      <span class={`badge badge-${props.status}`} tabIndex={0} aria-describedby={tip} title={props.error}>
        {props.status}
      </span>
      <span class="tip" role="tooltip" id={tip}>
        {props.error}
      </span>
    </span>
  );
}

/** `CODE: message`, then the field and the hint, as the CLI prints a refusal. */
export function ProblemView(props: { problem?: Problem | Error | null; label?: string }) {
  const p = props.problem as (Problem & Error) | undefined | null;
  if (!p) return null;
  return (
    <div class="problem" role="alert" aria-label={props.label}>
      <strong>{p.code ? `${p.code}: ` : ''}</strong>
      <span class="problem-message">{p.message}</span>
      {p.field ? <span class="problem-field"> (field: {p.field})</span> : null}
      {p.hint ? <div class="problem-hint">{p.hint}</div> : null}
    </div>
  );
}

const RELATIVE = new Intl.RelativeTimeFormat(undefined, { numeric: 'auto' });

/** "3 minutes ago", the exact time on hover; "—" when there is none. */
export function When(props: { at?: string | Date | null }) {
  if (!props.at) return <span class="muted">—</span>;
  const date = new Date(props.at);
  const seconds = Math.round((date.getTime() - Date.now()) / 1000);
  const abs = Math.abs(seconds);
  const text =
    abs < 60
      ? RELATIVE.format(seconds, 'second')
      : abs < 3600
        ? RELATIVE.format(Math.round(seconds / 60), 'minute')
        : abs < 86400
          ? RELATIVE.format(Math.round(seconds / 3600), 'hour')
          : RELATIVE.format(Math.round(seconds / 86400), 'day');
  return (
    <time dateTime={date.toISOString()} title={date.toLocaleString()}>
      {text}
    </time>
  );
}

export function bytes(n?: number | null): string {
  if (n === undefined || n === null) return '—';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = n;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(unit === 0 ? 0 : 1)} ${units[unit]}`;
}

/** A run's page in the Temporal UI, opened in a new tab. */
export function RunLink(props: { href?: string | null; children?: ComponentChildren }) {
  if (!props.href) return null;
  return (
    <a class="run-link" href={props.href} target="_blank" rel="noopener noreferrer">
      {props.children ?? 'run in Temporal'}
    </a>
  );
}

/** A modal dialog: opened when mounted, Escape or the close button calls `onClose`. */
export function Dialog(props: { title: string; onClose: () => void; children: ComponentChildren }) {
  const ref = useRef<HTMLDialogElement>(null);
  const heading = useId();
  useEffect(() => {
    const dialog = ref.current;
    if (dialog && !dialog.open) dialog.showModal();
    return () => dialog?.close();
  }, []);
  return (
    <dialog
      ref={ref}
      aria-labelledby={heading}
      onCancel={(e) => {
        e.preventDefault();
        props.onClose();
      }}
    >
      <header class="dialog-header">
        <h2 id={heading}>{props.title}</h2>
        <button type="button" class="icon" aria-label="Close" onClick={props.onClose}>
          ×
        </button>
      </header>
      {props.children}
    </dialog>
  );
}
