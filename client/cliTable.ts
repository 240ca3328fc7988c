// Lists print as a table with a header row, columns padded to their widest cell (`docker ps`, `gh pr list`).

/** Prints `rows` under `headers` on stdout; nothing but `empty` (on stderr) when there are none. */
export function printTable(headers: string[], rows: Array<Array<string | number | null | undefined>>, empty: string): void {
  if (rows.length === 0) return void console.error(empty);
  const cells = rows.map((r) => r.map((c) => (c === null || c === undefined ? '' : String(c))));
  const widths = headers.map((h, i) => Math.max(h.length, ...cells.map((r) => r[i]?.length ?? 0)));
  const line = (r: string[]): string =>
    r
      .map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  console.log(line(headers));
  for (const r of cells) console.log(line(r));
}
