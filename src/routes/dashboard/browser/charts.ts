/**
 * /dashboard/charts.js: a job's live charts with uPlot (vendor/uplot, served as /dashboard/uplot.js and loaded by
 * the page before this module, as the global `uPlot`): reward, accuracy, KL, entropy, thinking length and tokens/s
 * from the worker's metrics events, and eval Pass@k from its eval events, over steps; axes, a legend with the values
 * under the cursor, and the job's checkpoints as dashed vertical lines. Each chart's box says how many steps and
 * checkpoints it draws (data-points, data-checkpoints), which the browser test reads. A chart whose metric the job
 * does not compute says why (util's chartNote: no KL with kl_beta 0) instead of staying empty.
 */
export const CHARTS_JS = String.raw`import { chartNote, el, formatNumber, metricRows, passAtKeys, seriesData } from './util.js';

export const CHARTS = [
  { id: 'reward', title: 'reward (mean)', type: 'metrics', keys: ['reward_mean'] },
  { id: 'accuracy', title: 'accuracy', type: 'metrics', keys: ['accuracy'] },
  { id: 'kl', title: 'KL to reference', type: 'metrics', keys: ['kl'] },
  { id: 'entropy', title: 'entropy', type: 'metrics', keys: ['entropy'] },
  { id: 'thinking', title: 'thinking length (tokens)', type: 'metrics', keys: ['thinking_length'] },
  { id: 'tps', title: 'rollout tokens/s', type: 'metrics', keys: ['tokens_per_s'] },
  { id: 'passk', title: 'eval Pass@k', type: 'eval', keys: null },
];
const COLORS = ['#1d4ed8', '#c2410c', '#15803d', '#7e22ce', '#0e7490'];

function drawCheckpoints(u, steps) {
  const ctx = u.ctx;
  ctx.save();
  ctx.strokeStyle = '#6b7280';
  ctx.fillStyle = '#6b7280';
  ctx.lineWidth = 1;
  ctx.setLineDash([4, 4]);
  ctx.font = Math.round(10 * devicePixelRatio) + 'px system-ui, sans-serif';
  const { left, top, width, height } = u.bbox;
  for (const s of steps) {
    const x = Math.round(u.valToPos(s, 'x', true));
    if (x < left - 1 || x > left + width + 1) continue;
    ctx.beginPath();
    ctx.moveTo(x, top);
    ctx.lineTo(x, top + height);
    ctx.stroke();
    ctx.fillText('ckpt ' + s, x + 3, top + 12 * devicePixelRatio);
  }
  ctx.restore();
}

/** The charts of one job in 'container'; update() with the job's events and checkpoint steps redraws them in place. */
export class JobCharts {
  constructor(container) {
    this.container = container;
    this.plots = new Map();
    this.checkpoints = [];
  }

  /** hyperparameters: the job's resolved set (job.method.hyperparameters), for the charts' notes. */
  update(events, checkpointSteps, hyperparameters) {
    this.checkpoints = checkpointSteps;
    const rows = { metrics: metricRows(events, 'metrics'), eval: metricRows(events, 'eval') };
    for (const chart of CHARTS) {
      const source = rows[chart.type];
      const keys = chart.keys || passAtKeys(source);
      const data = seriesData(source, keys);
      const have = keys.length > 0 && data.slice(1).some((ys) => ys.some((y) => y !== null));
      let entry = this.plots.get(chart.id);
      if (!entry) {
        const box = el('div', { class: 'chart', id: 'chart-' + chart.id }, [el('div', { class: 'chart-title' }, chart.title)]);
        const empty = el('div', { class: 'chart-empty muted' }, 'not in this job\'s events (yet)');
        box.append(empty);
        this.container.append(box);
        entry = { box, empty, plot: null, keys: [] };
        this.plots.set(chart.id, entry);
      }
      entry.box.dataset.points = String(have ? data[0].length : 0);
      entry.box.dataset.checkpoints = String(checkpointSteps.length);
      if (!have) {
        const note = chartNote(chart.id, hyperparameters);
        entry.empty.textContent = note || 'not in this job\'s events (yet)';
        if (note) entry.box.dataset.note = note;
        continue;
      }
      entry.empty.remove();
      if (entry.plot && entry.keys.join() === keys.join()) {
        entry.plot.setData(data);
        entry.plot.redraw(false, false);
        continue;
      }
      if (entry.plot) entry.plot.destroy();
      entry.keys = keys;
      entry.plot = new uPlot(this.options(keys), data, entry.box);
    }
  }

  options(keys) {
    const self = this;
    return {
      width: 330,
      height: 190,
      scales: { x: { time: false } },
      cursor: { points: { size: 7 } },
      legend: { live: true },
      axes: [
        { label: 'step', labelSize: 16, size: 30, values: (u, splits) => splits.map((v) => (Number.isInteger(v) ? String(v) : '')) },
        { size: 56, values: (u, splits) => splits.map(formatNumber) },
      ],
      series: [
        { label: 'step', value: (u, v) => (v === null || v === undefined ? '-' : String(v)) },
        ...keys.map((k, i) => ({
          label: k,
          stroke: COLORS[i % COLORS.length],
          width: 2,
          spanGaps: true,
          points: { show: true, size: 5 },
          value: (u, v) => formatNumber(v),
        })),
      ],
      hooks: { draw: [(u) => drawCheckpoints(u, self.checkpoints)] },
    };
  }

  destroy() {
    for (const entry of this.plots.values()) if (entry.plot) entry.plot.destroy();
    this.plots.clear();
  }
}
`;
