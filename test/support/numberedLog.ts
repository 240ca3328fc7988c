// A job whose every byte says where it is: fixed-width numbered lines, so the bytes at any offset of its output can
// be computed without keeping the output. Used to check a log past its cap at any scale (the CI test and the bench),
// reading the log as a stream: memory stays at one chunk whatever the log's size.

/** The mark the job prints after its numbered lines. */
export const MARK = 'tail-mark\n';

/** Digits per line such that `bytes` of lines never run out of numbers (`seq -w` pads to the width of its end). */
function widthFor(bytes: number): number {
  for (let digits = 1; ; digits++) if ((10 ** digits - 1) * (digits + 1) >= bytes) return digits;
}

/** `bytes` of numbered lines, then an empty line and the mark: `total` bytes in all. */
export function numberedJob(bytes: number): { command: string[]; total: number; bytesAt: (from: number, to: number) => Buffer } {
  const digits = widthFor(bytes);
  const line = digits + 1;
  const suffix = Buffer.from(`\n${MARK}`);
  const total = bytes + suffix.length;
  /** The job's bytes [from, to), computed. */
  const bytesAt = (from: number, to: number): Buffer => {
    const parts: Buffer[] = [];
    const end = Math.min(to, bytes);
    if (from < end) {
      const first = Math.floor(from / line);
      const last = Math.ceil(end / line);
      const text = Array.from({ length: last - first }, (_, i) => `${String(first + i + 1).padStart(digits, '0')}\n`).join('');
      parts.push(Buffer.from(text).subarray(from - first * line, end - first * line));
    }
    if (to > bytes) parts.push(suffix.subarray(Math.max(0, from - bytes), to - bytes));
    return Buffer.concat(parts);
  };
  const script = `seq -w 1 ${10 ** digits - 1} | head -c ${bytes}; echo; printf '${MARK.trimEnd()}\\n'`;
  return { command: ['sh', '-c', script], total, bytesAt };
}

export interface CutLogCheck {
  /** stdout bytes the log holds, and how many of them matched the job's own bytes at their place. */
  kept: number;
  matched: number;
  /** Where the first mismatch was (stdout offset in the log), if any. */
  firstMismatch?: number;
  notes: string;
  /** The stdout offset in the log at which each note came. */
  notesAt: number[];
}

/**
 * Reads a job log as it streams and compares it with what a log cut at `cap` must hold: the job's first `cap`
 * bytes, then (after the cut note) the job's true last `tail` bytes. Nothing is kept but the note text.
 */
export async function checkCutLog(
  chunks: AsyncIterable<{ stream: string; data: Buffer }>,
  job: { total: number; bytesAt: (from: number, to: number) => Buffer },
  cap: number,
  tail = 65536,
): Promise<CutLogCheck> {
  let kept = 0;
  let matched = 0;
  let firstMismatch: number | undefined;
  let notes = '';
  const notesAt: number[] = [];
  for await (const c of chunks) {
    if (c.stream === 'note') {
      notes += c.data.toString('utf8');
      notesAt.push(kept);
      continue;
    }
    if (c.stream !== 'stdout') {
      firstMismatch ??= kept;
      continue;
    }
    // Log offset `kept` is job offset `kept` before the cut, and `total - tail + (kept - cap)` after it.
    for (let at = 0; at < c.data.length;) {
      const pos = kept + at;
      const before = pos < cap;
      const len = Math.min(c.data.length - at, before ? cap - pos : Infinity, 4 * 1024 * 1024);
      const from = before ? pos : job.total - tail + (pos - cap);
      const want = job.bytesAt(from, from + len);
      if (want.length === len && want.equals(c.data.subarray(at, at + len))) matched += len;
      else firstMismatch ??= pos;
      at += len;
    }
    kept += c.data.length;
  }
  return { kept, matched, ...(firstMismatch !== undefined ? { firstMismatch } : {}), notes, notesAt };
}
