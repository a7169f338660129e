/**
 * Turns the rows a topic returns into checked, compared rows, and renders them as terminal tables,
 * Markdown tables and ASCII bar charts. The row format is described in bench/README.md.
 */

const TIME_UNITS = /^(ps|ns|µs|us|ms|s|min)(\/(op|call|item|task|round ?trip|rt|msg))?$/i;
const RATE_UNITS = /(\/s|per s(ec(ond)?)?|ops\/s|hz)$/i;
const SIZE_UNITS = /^(B|bytes|KB|KiB|MB|MiB|GB|GiB)$/i;

/** lower/higher from the unit, when a row does not say. */
export function inferBetter(unit) {
  if (RATE_UNITS.test(unit)) return 'higher';
  if (TIME_UNITS.test(unit) || SIZE_UNITS.test(unit)) return 'lower';
  if (/speed-?up|^x$/i.test(unit)) return 'higher';
  return undefined;
}

function words(unit, better) {
  if (TIME_UNITS.test(unit) || RATE_UNITS.test(unit) || /speed-?up/i.test(unit)) return ['faster', 'slower'];
  if (SIZE_UNITS.test(unit)) return better === 'lower' ? ['smaller', 'larger'] : ['larger', 'smaller'];
  return ['better', 'worse'];
}

/**
 * Checks and completes a topic's rows. Throws a TypeError naming the first malformed row (the topic is then
 * reported as failed); returns { rows, warnings } for fixable omissions.
 */
export function normalizeRows(rows) {
  if (!Array.isArray(rows)) throw new TypeError(`run(ctx) must resolve to an array of rows, got ${typeof rows}`);
  const warnings = [];
  const out = rows.map((r, i) => {
    const where = `row ${i}${r && typeof r.name === 'string' ? ` ('${r.name}')` : ''}`;
    if (typeof r !== 'object' || r === null) throw new TypeError(`${where} is not an object`);
    if (typeof r.group !== 'string' || r.group === '') throw new TypeError(`${where}: "group" must be a non-empty string`);
    if (typeof r.name !== 'string' || r.name === '') throw new TypeError(`${where}: "name" must be a non-empty string`);
    const value = r.value === null || r.value === undefined ? null : r.value;
    if (value !== null && (typeof value !== 'number' || !Number.isFinite(value))) {
      throw new TypeError(`${where}: "value" must be a finite number or null (not measured), got ${String(r.value)}`);
    }
    const unit = typeof r.unit === 'string' ? r.unit : '';
    let better = r.better;
    if (better !== 'lower' && better !== 'higher') {
      const inferred = inferBetter(unit);
      if (inferred === undefined) throw new TypeError(`${where}: "better" must be 'lower' or 'higher' (unit '${unit}' does not tell)`);
      if (better !== undefined) throw new TypeError(`${where}: "better" must be 'lower' or 'higher', got ${String(better)}`);
      warnings.push(`${where}: no "better", assumed '${inferred}' from unit '${unit}'`);
      better = inferred;
    }
    return {
      group: r.group,
      name: r.name,
      value,
      unit,
      better,
      baseline: r.baseline === true,
      ...(r.target !== undefined ? { target: r.target } : {}),
      ...(typeof r.spread === 'number' && Number.isFinite(r.spread) ? { spread: r.spread } : {}),
      ...(typeof r.note === 'string' ? { note: r.note } : {}),
      ...(r.params !== undefined ? { params: r.params } : {}),
    };
  });
  return { rows: out, warnings };
}

/** Groups in first-seen order. */
export function groupRows(rows) {
  const groups = new Map();
  for (const r of rows) {
    if (!groups.has(r.group)) groups.set(r.group, []);
    groups.get(r.group).push(r);
  }
  return groups;
}

function fmtFactor(x) {
  if (x >= 100) return Math.round(x).toLocaleString('en-US');
  if (x >= 10) return x.toFixed(1);
  return x.toFixed(2);
}

/** Adds ratio (value / baseline), verdict and target evaluation to every row; returns warnings. */
export function compare(rows) {
  const warnings = [];
  for (const [group, members] of groupRows(rows)) {
    const bases = members.filter((r) => r.baseline);
    if (bases.length > 1) warnings.push(`group '${group}': ${bases.length} baseline rows; the first one is used`);
    const base = bases[0];
    for (const r of members) {
      r.ratio = null;
      r.verdict = r.baseline ? 'baseline' : '';
      if (base && !r.baseline && r.value !== null && base.value !== null && base.value !== 0 && r.value !== 0) {
        r.ratio = r.value / base.value;
        const gain = r.better === 'lower' ? base.value / r.value : r.value / base.value;
        const [up, down] = words(r.unit, r.better);
        if (fmtFactor(gain) === '1.00' || fmtFactor(1 / gain) === '1.00') r.verdict = 'same';
        else r.verdict = gain >= 1 ? `${fmtFactor(gain)}x ${up}` : `${fmtFactor(1 / gain)}x ${down}`;
      }
      evaluateTarget(r, members, rows, warnings);
    }
  }
  return warnings;
}

function evaluateTarget(r, members, all, warnings) {
  r.targetText = '';
  r.met = null;
  const t = r.target;
  if (t === undefined || t === null) return;
  if (typeof t === 'string') {
    r.targetText = t;
    return;
  }
  if (typeof t !== 'object') {
    warnings.push(`row '${r.name}': target must be a string or an object`);
    return;
  }
  const le = r.better === 'lower';
  if (typeof t.ratio === 'number' && typeof t.vs === 'string') {
    const ref = members.find((m) => m.name === t.vs) ?? all.find((m) => m.name === t.vs);
    const n = (x) => String(Number(x.toPrecision(3)));
    const [better] = words(r.unit, r.better);
    const rel = le
      ? t.ratio < 1 ? `≥ ${n(1 / t.ratio)}x ${better} than ${t.vs}` : `≤ ${n(t.ratio)}x ${t.vs}`
      : `≥ ${n(t.ratio)}x ${t.vs}`;
    r.targetText = t.text ?? rel;
    if (!ref) {
      warnings.push(`row '${r.name}': target refers to '${t.vs}', which no row has`);
      return;
    }
    if (r.value === null || ref.value === null || ref.value === 0) return;
    const x = r.value / ref.value;
    r.targetAchieved = le && t.ratio < 1 ? `${fmtFactor(1 / x)}x ${better}` : `${fmtFactor(x)}x`;
    r.met = le ? x <= t.ratio : x >= t.ratio;
    return;
  }
  if (typeof t.max === 'number' || typeof t.min === 'number') {
    const parts = [];
    if (typeof t.min === 'number') parts.push(`≥ ${fmtValue(t.min)} ${r.unit}`);
    if (typeof t.max === 'number') parts.push(`≤ ${fmtValue(t.max)} ${r.unit}`);
    r.targetText = t.text ?? parts.join(', ');
    if (r.value === null) return;
    r.met = (typeof t.min !== 'number' || r.value >= t.min) && (typeof t.max !== 'number' || r.value <= t.max);
    return;
  }
  if (typeof t.text === 'string') {
    r.targetText = t.text;
    return;
  }
  warnings.push(`row '${r.name}': target needs {ratio, vs}, {max}/{min} or a string`);
}

/** 3 significant digits, thousands separators, k/M/G for large values. */
export function fmtValue(v) {
  if (v === null || v === undefined) return 'n/a';
  const a = Math.abs(v);
  if (a >= 1e9) return `${(v / 1e9).toPrecision(3)}G`;
  if (a >= 1e6) return `${(v / 1e6).toPrecision(3)}M`;
  if (a >= 1e5) return `${(v / 1e3).toPrecision(3)}k`;
  if (a >= 1000) return Math.round(v).toLocaleString('en-US');
  if (a === 0) return '0';
  if (a < 0.001) return v.toExponential(2);
  return String(Number(v.toPrecision(3)));
}

function metText(r) {
  if (r.met === null) return r.targetText ? '?' : '';
  const achieved = r.targetAchieved !== undefined ? ` (${r.targetAchieved})` : '';
  return `${r.met ? 'yes' : 'NO'}${achieved}`;
}

function tableCells(members) {
  const withSpread = members.some((r) => r.spread !== undefined);
  const withTarget = members.some((r) => r.targetText);
  const head = ['name', 'value', 'unit', ...(withSpread ? ['±'] : []), 'vs baseline', ...(withTarget ? ['target', 'met'] : [])];
  const align = ['l', 'r', 'l', ...(withSpread ? ['r'] : []), 'l', ...(withTarget ? ['l', 'l'] : [])];
  const body = members.map((r) => [
    r.name + (r.note ? ` [${r.note}]` : ''),
    fmtValue(r.value),
    r.unit,
    ...(withSpread ? [r.spread === undefined ? '' : `${(r.spread * 100).toFixed(r.spread < 0.1 ? 1 : 0)}%`] : []),
    r.verdict,
    ...(withTarget ? [r.targetText, metText(r)] : []),
  ]);
  return { head, align, body };
}

const width = (s) => [...s].length;
const pad = (s, n, a) => (a === 'r' ? ' '.repeat(n - width(s)) + s : s + ' '.repeat(n - width(s)));

/** A plain-text table for the terminal. */
export function textTable(members) {
  const { head, align, body } = tableCells(members);
  const w = head.map((h, c) => Math.max(width(h), ...body.map((row) => width(row[c]))));
  const line = (cells) => cells.map((x, c) => pad(x, w[c], align[c])).join('  ').trimEnd();
  return [line(head), w.map((n) => '─'.repeat(n)).join('  '), ...body.map(line)].join('\n');
}

/** A GitHub-flavoured Markdown table. */
export function markdownTable(members) {
  const { head, align, body } = tableCells(members);
  const esc = (s) => s.replace(/\|/g, '\\|');
  return [
    `| ${head.map(esc).join(' | ')} |`,
    `| ${align.map((a) => (a === 'r' ? '---:' : '---')).join(' | ')} |`,
    ...body.map((row) => `| ${row.map(esc).join(' | ')} |`),
  ].join('\n');
}

/** Horizontal bars, one per measured row; logarithmic when the values span more than 30x. */
export function barChart(members, { width: W = 40 } = {}) {
  const rows = members.filter((r) => r.value !== null && r.value > 0);
  if (rows.length < 2) return '';
  const max = Math.max(...rows.map((r) => r.value));
  const min = Math.min(...rows.map((r) => r.value));
  const log = max / min > 30;
  const len = (v) => (log ? 1 + ((W - 1) * Math.log(v / min)) / Math.log(max / min) : (W * v) / max);
  const nameW = Math.max(...rows.map((r) => width(r.name)));
  const lines = rows.map((r) => {
    const l = len(r.value);
    const full = Math.floor(l);
    const bar = '█'.repeat(full) + (l - full >= 0.5 || full === 0 ? '▌' : '');
    return `${pad(r.name, nameW, 'l')}  ${pad(bar, W + 1, 'l')} ${fmtValue(r.value)} ${r.unit}`;
  });
  const better = rows[0].better === 'lower' ? 'shorter is better' : 'longer is better';
  return `${lines.join('\n')}\n${' '.repeat(nameW + 2)}(${better}${log ? '; log scale' : ''})`;
}
