/** Plain-text tables for the CLI's human output: columns padded to their widest cell. */

/** `rows[0]` is the header; `empty` is printed under it when there is no other row. */
export function formatTable(rows: readonly (readonly string[])[], empty: string): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  const lines = rows.map((r) => r.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd());
  if (rows.length === 1) lines.push(empty);
  return `${lines.join('\n')}\n`;
}
