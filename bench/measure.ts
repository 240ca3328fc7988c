// Timing helpers for `npm run bench`: every ratio is measured in the same run, on the same machine.
export async function time(work: () => Promise<unknown>): Promise<number> {
  const start = process.hrtime.bigint();
  await work();
  return Number(process.hrtime.bigint() - start) / 1e6;
}

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

export function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

/** One line: `name: a ms / b ms = ratio (target …) ✓|✗`. */
export function report(name: string, a: number, b: number, goal: { target: string; ok: boolean }): void {
  const ratio = a / b;
  console.log(`${goal.ok ? '✓' : '✗'} ${name}: ${a.toFixed(0)} ms / ${b.toFixed(0)} ms = ${ratio.toFixed(2)} (target ${goal.target})`);
}
