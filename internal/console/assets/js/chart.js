// A bar chart drawn as SVG elements (no library, no markup strings). Its
// numbers are also given as text, for screen readers and for copying.

import { h } from './dom.js';

const W = 640;
const H = 180;
const pad = { left: 36, right: 8, top: 10, bottom: 26 };

// barChart draws points [{label, value}] left to right.
export function barChart(title, points) {
  const max = Math.max(1, ...points.map((p) => p.value || 0));
  const top = niceCeil(max);
  const plotW = W - pad.left - pad.right;
  const plotH = H - pad.top - pad.bottom;
  const step = points.length ? plotW / points.length : plotW;
  const known = points.filter((p) => p.value !== null);
  const summary = known.length
    ? `${title}: ${known.map((p) => `${p.label} ${p.value}`).join(', ')}`
    : `${title}: no samples yet`;
  const svg = h('svg:svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': summary, class: 'chart' });
  svg.append(h('svg:title', null, summary));
  // Whole-number gridlines: the top, and its half when that is whole.
  const fractions = top % 2 === 0 ? [0, 0.5, 1] : [0, 1];
  for (const f of fractions) {
    const y = pad.top + plotH * (1 - f);
    svg.append(h('svg:line', { x1: pad.left, x2: W - pad.right, y1: y, y2: y, class: 'grid-line' }));
    svg.append(h('svg:text', { x: pad.left - 6, y: y + 4, 'text-anchor': 'end', class: 'axis' }, String(top * f)));
  }
  points.forEach((p, i) => {
    if (p.value !== null) {
      const bh = (plotH * p.value) / top;
      const x = pad.left + i * step + step * 0.15;
      svg.append(h('svg:rect', { x, y: pad.top + plotH - bh, width: Math.max(1, step * 0.7), height: bh, class: 'bar', 'data-value': p.value }));
    }
    // Label every few bars, counted from the newest.
    const every = Math.max(1, Math.ceil(points.length / 8));
    if ((points.length - 1 - i) % every === 0) {
      svg.append(h('svg:text', { x: pad.left + i * step + step / 2, y: H - 8, 'text-anchor': 'middle', class: 'axis' }, p.label));
    }
  });
  if (!known.length) {
    svg.append(h('svg:text', { x: W / 2, y: H / 2, 'text-anchor': 'middle', class: 'axis' }, 'Collecting samples…'));
  }
  return h('figure', { class: 'chart-figure' }, svg);
}

function niceCeil(n) {
  const mag = 10 ** Math.floor(Math.log10(n));
  for (const m of [1, 2, 5, 10]) {
    if (n <= m * mag) {
      return m * mag;
    }
  }
  return 10 * mag;
}
