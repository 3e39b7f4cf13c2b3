/**
 * bench/results-engine.md as sections of markdown tables: `appendRows` creates the file or a section (title, intro,
 * table header) when missing, then adds rows at the end of that section's table, so the numbers keep their history.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

export const RESULTS = join(resolve(import.meta.dirname, '..'), 'bench/results-engine.md');
const TITLE = '# Node engine benchmark (bench/engine.ts) and held-out accuracy (bench/eval-reason.ts)\n';

export const separatorOf = (header: string) => header.replace(/[^|]+/g, ' --- ');

export function appendRows(section: string, intro: string[], header: string, rows: string[]): void {
  let text = existsSync(RESULTS) ? readFileSync(RESULTS, 'utf8') : TITLE;
  const heading = `\n## ${section}\n`;
  if (!text.includes(heading)) {
    text = `${text.trimEnd()}\n${heading}\n${intro.join('\n')}\n\n${header}\n${separatorOf(header)}\n`;
  }
  const start = text.indexOf(heading) + heading.length;
  const next = text.indexOf('\n## ', start);
  const end = next < 0 ? text.length : next;
  const body = text.slice(start, end).trimEnd();
  writeFileSync(RESULTS, `${text.slice(0, start)}${body}\n${rows.join('\n')}\n${next < 0 ? '' : text.slice(end)}`);
}
