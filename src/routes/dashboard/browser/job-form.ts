/**
 * /dashboard/job-form.js: create a fine-tuning job from the page. Upload a JSONL file (the API validates it as it
 * streams; its 400 names the bad line, and the page shows that message), pick files, a base model, the method and
 * the grader, and fill hyperparameters. The form is built from the API's own OpenAPI document (/openapi.json): the
 * CreateFineTuningJob schema's fields, the Grader variants and every Hyperparameters field with its default and
 * "auto" rule, so a field the API adds (such as a job's resources) appears here without a change to the page.
 */
export const JOB_FORM_JS = String.raw`import { api, byId, el, fieldHint, getJson, parseFieldValue, resolveRef, showError } from './util.js';
import { loadJobs, showJob } from './jobs.js';

// Fields the form lays out itself; every other property of CreateFineTuningJob is rendered from its schema.
const OWN = ['model', 'training_file', 'validation_file', 'method', 'grader', 'metadata', 'integrations'];
let doc = null;

/** An input for one schema field: a select for enums (and booleans), else a text box; '' means "leave it out". */
function fieldInput(name, schema) {
  const s = resolveRef(doc, schema);
  const options = (s.anyOf || s.oneOf || [s]).map((o) => resolveRef(doc, o));
  const enums = options.flatMap((o) => o.enum || []);
  const onlyEnums = options.every((o) => o.enum || o.type === 'null');
  const isBool = options.some((o) => o.type === 'boolean');
  const hint = fieldHint(doc, s);
  const shown = hint.default === null ? 'no default' : 'default ' + hint.default + (hint.auto ? ' = ' + hint.auto : '');
  let input;
  if (onlyEnums || isBool) {
    const values = isBool ? ['true', 'false'] : enums.map(String);
    input = el('select', { name }, [el('option', { value: '' }, '(' + shown + ')'), ...values.map((v) => el('option', { value: v }, v))]);
  } else {
    input = el('input', { name, type: 'text', placeholder: hint.default === null ? '' : hint.default, size: 10, autocomplete: 'off' });
  }
  const label = el('label', { class: 'field', title: hint.description }, [el('span', { class: 'field-name' }, name), input, el('span', { class: 'field-hint muted' }, shown)]);
  return { label, input, schema: s };
}

/** A group of fields for an object schema; read() returns {value} (undefined when all empty) or {error}. */
function objectFields(prefix, schema) {
  const s = resolveRef(doc, schema);
  const fields = Object.entries(s.properties || {}).map(([name, sub]) => {
    const subSchema = resolveRef(doc, sub);
    if (subSchema.type === 'object' && subSchema.properties) {
      const group = objectFields(prefix + name + '.', subSchema);
      return { name, node: el('fieldset', { class: 'nested' }, [el('legend', {}, name), group.node]), read: group.read };
    }
    const f = fieldInput(prefix + name, subSchema);
    return { name, node: f.label, read: () => parseFieldValue(doc, f.schema, f.input.value) };
  });
  const node = el('div', { class: 'fields' }, fields.map((f) => f.node));
  const read = () => {
    const out = {};
    for (const f of fields) {
      const r = f.read();
      if (r.error) return { error: prefix + f.name + ': ' + r.error };
      if (r.value !== undefined) out[f.name] = r.value;
    }
    return { value: Object.keys(out).length ? out : undefined };
  };
  return { node, read };
}

/** The Grader: its variants' type as a select, and the chosen variant's other fields. */
function graderFields(schema) {
  const variants = (resolveRef(doc, schema).oneOf || []).map((v) => resolveRef(doc, v));
  const typeOf = (v) => (v.properties && v.properties.type && v.properties.type.enum ? v.properties.type.enum[0] : '?');
  const select = el('select', { name: 'grader.type', id: 'grader-type' }, variants.map((v) => el('option', { value: typeOf(v) }, typeOf(v))));
  const slot = el('div');
  let group = null;
  const pick = () => {
    const variant = variants.find((v) => typeOf(v) === select.value);
    const rest = Object.assign({}, variant, { properties: Object.fromEntries(Object.entries(variant.properties).filter(([k]) => k !== 'type')) });
    group = objectFields('grader.', rest);
    slot.replaceChildren(group.node);
  };
  select.addEventListener('change', pick);
  pick();
  const node = el('div', {}, [el('div', { class: 'row' }, el('label', {}, ['grader ', select])), slot]);
  return { node, read: () => { const r = group.read(); return r.error ? r : { value: Object.assign({ type: select.value }, r.value || {}) }; } };
}

async function fileOptions(select, withNone) {
  const list = await getJson('/v1/files?limit=100');
  const current = select.value;
  select.replaceChildren(
    ...(withNone ? [el('option', { value: '' }, '(none)')] : []),
    ...list.data.map((f) => el('option', { value: f.id }, f.filename + ' (' + f.examples + ' examples) ' + f.id)),
  );
  if (current) select.value = current;
}

async function upload(input, status, selects) {
  status.className = 'muted';
  const file = input.files && input.files[0];
  if (!file) { status.textContent = 'choose a .jsonl file first'; return; }
  status.textContent = 'uploading ' + file.name + '...';
  const form = new FormData();
  form.append('purpose', 'fine-tune');
  form.append('file', file, file.name);
  try {
    const created = await (await api('/v1/files', { method: 'POST', form })).json();
    // The selects list the new file before the status says it is there.
    await Promise.all(selects.map((s) => fileOptions(s.select, s.withNone)));
    selects[0].select.value = created.id;
    status.textContent = 'uploaded ' + created.filename + ': ' + created.examples + ' examples (' + created.id + ')';
  } catch (e) {
    status.className = 'error';
    status.textContent = 'upload rejected: ' + e.message;
  }
}

/** Builds the form into #job-form (once the key is set). */
export async function buildJobForm(models) {
  doc = doc || (await (await fetch('/openapi.json')).json());
  const create = resolveRef(doc, doc.components.schemas.CreateFineTuningJob);
  const props = create.properties;
  const methodSchema = resolveRef(doc, props.method);
  const methodTypes = resolveRef(doc, methodSchema.properties.type);

  const trainSel = el('select', { id: 'training-file', name: 'training_file' });
  const validSel = el('select', { id: 'validation-file', name: 'validation_file' });
  const selects = [{ select: trainSel, withNone: false }, { select: validSel, withNone: true }];
  const fileInput = el('input', { type: 'file', id: 'upload-file', accept: '.jsonl,.ndjson,application/jsonl' });
  const uploadStatus = el('span', { class: 'muted', id: 'upload-status' });
  const modelSel = el('select', { id: 'base-model', name: 'model' }, models.map((m) => el('option', { value: m.id }, m.id)));
  const methodSel = el('select', { id: 'method-type' }, methodTypes.enum.map((t) => el('option', { value: t, selected: t === methodTypes.default }, t)));
  const grader = graderFields(props.grader);
  const hp = objectFields('', methodSchema.properties.hyperparameters);
  const others = objectFields('', Object.assign({}, create, { properties: Object.fromEntries(Object.entries(props).filter(([k]) => !OWN.includes(k))) }));
  const createError = el('div', { class: 'error', id: 'create-error', role: 'alert' });
  const submit = el('button', { type: 'submit', id: 'create-job' }, 'Create job');

  const form = el('form', { id: 'create-form' }, [
    el('div', { class: 'row' }, [el('label', {}, ['JSONL file ', fileInput]), el('button', { type: 'button', id: 'upload', onclick: () => upload(fileInput, uploadStatus, selects) }, 'Upload'), uploadStatus]),
    el('div', { class: 'row' }, [
      el('label', {}, ['training file ', trainSel]),
      el('label', {}, ['validation file ', validSel]),
    ]),
    el('div', { class: 'row' }, [el('label', {}, ['base model ', modelSel]), el('label', {}, ['method ', methodSel])]),
    grader.node,
    others.node,
    el('details', { id: 'hyperparameters' }, [el('summary', {}, 'Hyperparameters (empty = the default shown; the API resolves "auto" at create, from the base model\'s recommendations where it has them, and the job page lists the values it chose)'), hp.node]),
    el('div', { class: 'row' }, [submit]),
    createError,
  ]);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    createError.textContent = '';
    const parts = { grader: grader.read(), hp: hp.read(), others: others.read() };
    const bad = Object.values(parts).find((p) => p.error);
    if (bad) { createError.textContent = bad.error; return; }
    const body = Object.assign({}, parts.others.value || {}, {
      model: modelSel.value,
      training_file: trainSel.value,
      method: { type: methodSel.value, hyperparameters: parts.hp.value || {} },
      grader: parts.grader.value,
    });
    if (validSel.value) body.validation_file = validSel.value;
    submit.disabled = true;
    try {
      const job = await (await api('/v1/finetune', { method: 'POST', json: body })).json();
      byId('new-job').open = false;
      await loadJobs();
      await showJob(job.id);
    } catch (e) {
      createError.textContent = 'not created: ' + e.message;
    } finally {
      submit.disabled = false;
    }
  });
  byId('job-form').replaceChildren(form);
  await Promise.all(selects.map((s) => fileOptions(s.select, s.withNone))).catch(showError);
}
`;
