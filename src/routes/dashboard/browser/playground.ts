/**
 * /dashboard/playground.js: the reasoning playground. One prompt on one model, or on two side by side (a base model
 * and a fine-tuned checkpoint) with the same seed; each run streams /v1/reason, shows its n samples side by side,
 * the vote as a histogram and, for soft-thinking samples (`soft_thoughts: true`), the soft-thought view: for each
 * thinking step the k tokens mixed into the model's input, heaviest first, with their weights as bars.
 */
export const PLAYGROUND_JS = String.raw`import { api, byId, el, formatNumber, showError, sseFrames } from './util.js';

/** A token's text with its whitespace made visible. */
export function visibleToken(t) {
  return t === '' ? '\u2205' : t.replace(/ /g, '\u2423').replace(/\n/g, '\u23ce').replace(/\t/g, '\u21e5');
}

/** A mixture weight as a percentage: 0.4213 -> "42.1%", below 0.1% -> "<0.1%" (the exact value is in the title). */
export function weightPercent(w) {
  return w >= 0.0005 ? (100 * w).toFixed(1) + '%' : '<0.1%';
}

/** The vote histogram's bars: each answer with its count, most votes first, and the samples without an answer. */
export function histogramBars(aggregate) {
  const bars = aggregate.distribution.map((d) => ({ answer: d.answer, count: d.count, winner: d.answer === aggregate.answer }));
  const counted = bars.reduce((s, b) => s + b.count, 0);
  if (aggregate.samples > counted) bars.push({ answer: null, count: aggregate.samples - counted, winner: false });
  return bars.sort((a, b) => b.count - a.count);
}

function histogram(aggregate) {
  const bars = histogramBars(aggregate);
  const max = Math.max(1, ...bars.map((b) => b.count));
  return el('div', { class: 'histogram' }, bars.map((b) => {
    const fill = el('div', { class: 'bar-fill' + (b.winner ? ' winner' : '') });
    fill.style.width = (100 * b.count / max).toFixed(1) + '%';
    return el('div', { class: 'bar' }, [
      el('span', { class: 'bar-label' }, b.answer === null ? '(no answer)' : b.answer),
      el('span', { class: 'bar-track' }, fill),
      el('span', { class: 'bar-count' }, String(b.count)),
    ]);
  }));
}

/**
 * For each thinking step a column: the step number and its k tokens, heaviest first, each with its weight as a bar;
 * tokens under 0.1% (slots the filters emptied carry weights near 1e-70) fold into one "+N <0.1%" line.
 */
function softThoughtView(steps) {
  const cols = steps.map((s, i) => {
    const order = s.ids.map((_, j) => j).sort((a, b) => s.weights[b] - s.weights[a]);
    const shown = order.filter((j, rank) => rank === 0 || s.weights[j] >= 0.0005);
    const folded = order.length - shown.length;
    return el('div', { class: 'step' }, [
      el('div', { class: 'step-no' }, String(i + 1)),
      ...shown.map((j) => {
        const bar = el('div', { class: 'w-bar' });
        bar.style.width = (100 * s.weights[j]).toFixed(1) + '%';
        return el('div', { class: 'tok' + (j === order[0] ? ' top' : ''), title: 'id ' + s.ids[j] + ', weight ' + formatNumber(s.weights[j]) }, [
          el('span', { class: 'tok-text' }, visibleToken(s.tokens[j])),
          el('span', { class: 'tok-w' }, weightPercent(s.weights[j])),
          bar,
        ]);
      }),
      folded ? el('div', { class: 'tok-folded', title: order.slice(shown.length).map((j) => 'id ' + s.ids[j] + ': ' + formatNumber(s.weights[j])).join('\n') }, '+' + folded + ' <0.1%') : null,
    ]);
  });
  return el('details', { class: 'soft-thoughts', open: true }, [
    el('summary', {}, 'soft thoughts: ' + steps.length + ' steps, ' + (steps[0] ? steps[0].ids.length : 0) + ' tokens mixed per step'),
    el('div', { class: 'steps' }, cols),
  ]);
}

/** Streams one /v1/reason request into its column. */
async function runOne(column, body) {
  const vote = el('div', { class: 'vote' }, 'running...');
  const hist = el('div');
  const grid = el('div', { class: 'samples' });
  column.replaceChildren(el('h3', {}, body.model), vote, hist, grid);
  const samples = new Map();
  const box = (i) => {
    if (!samples.has(i)) {
      const parts = { thinking: el('div', { class: 'thinking' }), answer: el('div', { class: 'answer' }), meta: el('div', { class: 'muted meta' }), thoughts: el('div') };
      grid.append(el('div', { class: 'sample', 'data-index': String(i) }, [el('strong', {}, 'sample ' + i), parts.thinking, parts.answer, parts.meta, parts.thoughts]));
      samples.set(i, parts);
    }
    return samples.get(i);
  };
  try {
    const res = await api('/v1/reason', { method: 'POST', json: body });
    const reader = res.body.getReader();
    const decoder = new TextDecoder();
    let rest = '';
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      const parsed = sseFrames(rest + decoder.decode(value, { stream: true }));
      rest = parsed.rest;
      for (const f of parsed.frames) {
        if (f.data === '[DONE]') continue;
        const chunk = JSON.parse(f.data);
        if (chunk.error) throw new Error(chunk.error.message);
        if (chunk.object === 'reason.vote') {
          const a = chunk.aggregate;
          vote.textContent = 'answer: ' + (a.answer === null ? '-' : a.answer) + ' (' + a.votes + '/' + a.samples + ' votes, seed ' + chunk.seed + ', ' + chunk.usage.total_tokens + ' tokens)';
          hist.replaceChildren(histogram(a));
          continue;
        }
        for (const c of chunk.choices) {
          const b = box(c.index);
          if (c.delta.reasoning) b.thinking.textContent += c.delta.reasoning;
          if (c.delta.content) b.answer.textContent += c.delta.content;
          if (c.finish_reason) {
            b.meta.textContent = c.finish_reason + (c.thinking_end ? ' (thinking: ' + c.thinking_end + ')' : '') + ', extracted: ' + (c.extracted_answer == null ? '-' : c.extracted_answer);
            if (c.soft_thoughts) b.thoughts.replaceChildren(softThoughtView(c.soft_thoughts));
          }
        }
      }
    }
  } catch (e) {
    // Only the in-process engine records soft thoughts: for a model served elsewhere, ask again without them.
    if (e.status === 400 && e.error && e.error.param === 'soft_thoughts' && body.soft_thoughts) {
      const rest = Object.assign({}, body);
      delete rest.soft_thoughts;
      await runOne(column, rest);
      column.insertBefore(el('div', { class: 'muted note' }, 'no soft thoughts: ' + e.error.message), column.children[1]);
      return;
    }
    vote.className = 'vote error';
    vote.textContent = e.message;
  }
}

async function runReason(ev) {
  ev.preventDefault();
  showError(null);
  const mode = byId('mode').value;
  const seedText = byId('seed').value;
  // Both columns of a comparison need the same seed: the page picks one when none is given.
  const seed = seedText !== '' ? Number(seedText) : Math.floor(Math.random() * 2 ** 31);
  const base = {
    prompt: byId('prompt').value,
    n: Number(byId('n').value) || 1,
    mode,
    max_tokens: Number(byId('max-tokens').value) || undefined,
    seed,
    stream: true,
  };
  if (mode === 'soft') {
    const soft = {};
    if (byId('max-topk').value !== '') soft.max_topk = Number(byId('max-topk').value);
    if (byId('gumbel-tau').value !== '') soft.gumbel_tau = Number(byId('gumbel-tau').value);
    if (Object.keys(soft).length) base.soft_thinking = soft;
    if (byId('soft-thoughts').checked) base.soft_thoughts = true;
  }
  const models = [byId('model').value, byId('compare-model').value].filter(Boolean);
  const results = byId('results');
  results.className = models.length > 1 ? 'compare' : '';
  const columns = models.map((m, i) => el('div', { class: 'run', id: 'run-' + i }));
  results.replaceChildren(...columns);
  byId('run').disabled = true;
  try {
    await Promise.all(models.map((model, i) => runOne(columns[i], Object.assign({ model }, base))));
  } finally {
    byId('run').disabled = false;
  }
}

export function setupPlayground() {
  byId('reason-form').addEventListener('submit', runReason);
  byId('mode').addEventListener('change', () => {
    for (const id of ['soft-thoughts', 'max-topk', 'gumbel-tau']) byId(id).disabled = byId('mode').value !== 'soft';
  });
}

/** Fills the two model selects (the second has "none" first). */
export function playgroundModels(models) {
  for (const [id, none] of [['model', false], ['compare-model', true]]) {
    const select = byId(id);
    const current = select.value;
    select.replaceChildren(...(none ? [el('option', { value: '' }, '(none)')] : []), ...models.map((m) => el('option', { value: m.id }, m.id)));
    if (current) select.value = current;
  }
}
`;
