/**
 * Vendors uPlot (the dashboard's charts) from the pinned npm package into vendor/uplot/: its minified browser build
 * and stylesheet as strings in uplot-assets.ts (the Workers bundle cannot read files at run time, so the app imports
 * them), its LICENSE, and a README with the version. Run after changing the `uplot` version in package.json:
 *
 *   npx tsx scripts/vendor-uplot.ts            # write vendor/uplot/
 *   npx tsx scripts/vendor-uplot.ts --check    # exit 1 when vendor/uplot/ differs from node_modules/uplot
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

const ROOT = resolve(import.meta.dirname, '..');
const PKG = join(ROOT, 'node_modules/uplot');
const OUT = join(ROOT, 'vendor/uplot');

export function vendoredFiles(): Record<string, string> {
  const pkg = JSON.parse(readFileSync(join(PKG, 'package.json'), 'utf8')) as { version: string; license: string; homepage?: string };
  const js = readFileSync(join(PKG, 'dist/uPlot.iife.min.js'), 'utf8');
  const css = readFileSync(join(PKG, 'dist/uPlot.min.css'), 'utf8');
  const assets =
    `/**\n * uPlot ${pkg.version} (${pkg.license}, Copyright (c) Leon Sorokin; see ./LICENSE), vendored by scripts/vendor-uplot.ts from\n` +
    ` * the npm package's dist/uPlot.iife.min.js and dist/uPlot.min.css. Generated: do not edit.\n */\n` +
    `export const UPLOT_VERSION = ${JSON.stringify(pkg.version)};\n` +
    `export const UPLOT_JS = ${JSON.stringify(js)};\n` +
    `export const UPLOT_CSS = ${JSON.stringify(css)};\n`;
  const readme =
    `# uPlot ${pkg.version} (vendored)\n\n` +
    `The dashboard's charts (src/routes/dashboard/browser/charts.ts): uPlot ${pkg.version} by Leon Sorokin, ${pkg.license} licence (./LICENSE),\n` +
    `from the npm package \`uplot@${pkg.version}\` (${pkg.homepage ?? 'https://github.com/leeoniya/uPlot'}).\n` +
    `\`uplot-assets.ts\` holds its \`dist/uPlot.iife.min.js\` and \`dist/uPlot.min.css\` as strings, which the app serves as\n` +
    `/dashboard/uplot.js and /dashboard/uplot.css (on Node and Workers alike; nothing is loaded from a CDN).\n\n` +
    `To upgrade: \`npm install --save-exact --save-dev uplot@<version>\`, then \`npx tsx scripts/vendor-uplot.ts\`.\n` +
    `tests/sdk/dashboard.test.ts fails while this folder and node_modules/uplot disagree.\n`;
  return { 'uplot-assets.ts': assets, LICENSE: readFileSync(join(PKG, 'LICENSE'), 'utf8'), 'README.md': readme };
}

if (process.argv[1] && resolve(process.argv[1]) === resolve(import.meta.filename)) {
  const files = vendoredFiles();
  if (process.argv.includes('--check')) {
    const stale = Object.entries(files).filter(([name, text]) => !existsSync(join(OUT, name)) || readFileSync(join(OUT, name), 'utf8') !== text);
    if (stale.length) {
      console.error(`vendor/uplot is stale (${stale.map(([n]) => n).join(', ')}): run npx tsx scripts/vendor-uplot.ts`);
      process.exit(1);
    }
    console.log('vendor/uplot matches node_modules/uplot');
  } else {
    mkdirSync(OUT, { recursive: true });
    for (const [name, text] of Object.entries(files)) writeFileSync(join(OUT, name), text);
    console.log(`wrote ${Object.keys(files).map((n) => `vendor/uplot/${n}`).join(', ')}`);
  }
}
