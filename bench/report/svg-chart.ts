/**
 * One scenario as an SVG 1.1 horizontal bar chart: our figure and the peer's as two bars on
 * one linear axis from 0 (ticks, unit), each bar labelled with its value, a dashed line where
 * the target puts our figure (peer × target ratio), and the ratio with its verdict under the
 * axis. Pure string building, no dependency; every number is written with at most 3
 * decimals, so bar widths keep the figures' ratio.
 *
 *   ┌ title ─────────────────────────────────────────────┐
 *   │ palisade …   ███████████████▏ 21 306               │
 *   │ nginx …      ███████████████████████┆ 28 865       │
 *   │              0    5k    10k   15k   ┆ 20k   25k rps │
 *   │ ours / peer 0.74× · target ≥ 0.7× (dashed): met     │
 *   └─────────────────────────────────────────────────────┘
 */
import { formatRatio, formatTarget, formatValue, type Scenario } from '../common/report.ts';

export const CHART_WIDTH = 720;
const LABEL_W = 250;
const PLOT_X = LABEL_W + 10;
const PLOT_W = CHART_WIDTH - PLOT_X - 90;
const BAR_H = 26;
const TOP = 62;
const GAP = 14;

const OURS_FILL = '#2f6fb3';
const PEER_FILL = '#9aa5b1';
const TARGET_STROKE = '#c0392b';

/** Escapes text for XML character data and attribute values. */
export function escapeXml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&apos;');
}

const num = (v: number) => String(Math.round(v * 1000) / 1000);

/** A "nice" tick step (1, 2 or 5 × 10^k) giving about `count` ticks up to `max`. */
export function niceStep(max: number, count = 6): number {
  if (!(max > 0)) return 1;
  const raw = max / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const f = raw / mag;
  return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * mag;
}

/** Tick labels in one style per axis (by its maximum): 25 000 → 25k, 1 500 000 → 1.5M, small values as they are. */
function tickLabel(v: number, axisMax: number): string {
  if (v === 0) return '0';
  if (axisMax >= 1e7) return `${Math.round((v / 1e6) * 100) / 100}M`;
  if (axisMax >= 1e4) return `${Math.round((v / 1e3) * 100) / 100}k`;
  return String(Math.round(v * 1000) / 1000);
}

function truncate(s: string, max: number): string {
  return s.length <= max ? s : `${s.slice(0, max - 1)}…`;
}

/** The SVG document (UTF-8, with the XML declaration) for one scenario. */
export function svgChart(s: Scenario): string {
  const ours = s.ours.value ?? 0;
  const peer = s.peer.value ?? 0;
  const targetAt = s.target !== null && s.peer.value !== null ? peer * s.target.value : null;
  const top = Math.max(ours, peer, targetAt ?? 0);
  const step = niceStep(top);
  const axisMax = top > 0 ? Math.ceil((top * 1.0001) / step) * step : 1;
  const x = (v: number) => PLOT_X + (v / axisMax) * PLOT_W;
  const width = (v: number) => (v / axisMax) * PLOT_W;
  const rowY = (i: number) => TOP + i * (BAR_H + GAP);
  const axisY = rowY(2) - GAP / 2;
  const height = axisY + 68;

  const out: string[] = [];
  out.push('<?xml version="1.0" encoding="UTF-8"?>');
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" version="1.1" width="${CHART_WIDTH}" height="${num(height)}" viewBox="0 0 ${CHART_WIDTH} ${num(height)}" font-family="Helvetica, Arial, sans-serif" font-size="12">`);
  out.push(`<title>${escapeXml(`${s.title}: ${s.ours.label} ${formatValue(s.ours.value)} ${s.unit}, ${s.peer.label} ${formatValue(s.peer.value)} ${s.unit}, ratio ${formatRatio(s.ratio, s.target)}`)}</title>`);
  out.push(`<rect x="0" y="0" width="${CHART_WIDTH}" height="${num(height)}" fill="#ffffff"/>`);
  out.push(`<text x="12" y="24" font-size="14" font-weight="bold">${escapeXml(truncate(s.title, 90))}</text>`);

  // Grid and ticks.
  for (let v = 0; v <= axisMax + step / 1e6; v += step) {
    const tx = num(x(v));
    out.push(`<line class="grid" x1="${tx}" y1="${TOP - 6}" x2="${tx}" y2="${num(axisY)}" stroke="#e3e6ea" stroke-width="1"/>`);
    out.push(`<text class="tick" x="${tx}" y="${num(axisY + 16)}" text-anchor="middle" fill="#444444">${escapeXml(tickLabel(v, axisMax))}</text>`);
  }
  out.push(`<line class="axis" x1="${PLOT_X}" y1="${num(axisY)}" x2="${num(PLOT_X + PLOT_W)}" y2="${num(axisY)}" stroke="#444444" stroke-width="1"/>`);
  out.push(`<text class="unit" x="${num(PLOT_X + PLOT_W / 2)}" y="${num(axisY + 32)}" text-anchor="middle" fill="#444444">${escapeXml(`${s.unit} (${s.better} is better)`)}</text>`);

  // Bars.
  const bars: { id: string; label: string; value: number | null; fill: string }[] = [
    { id: 'ours', label: s.ours.label, value: s.ours.value, fill: OURS_FILL },
    { id: 'peer', label: s.peer.label, value: s.peer.value, fill: PEER_FILL },
  ];
  bars.forEach((b, i) => {
    const y = rowY(i);
    out.push(`<text class="label" x="${LABEL_W}" y="${num(y + BAR_H / 2 + 4)}" text-anchor="end">${escapeXml(truncate(b.label, 40))}</text>`);
    const w = b.value === null ? 0 : width(Math.max(0, b.value));
    out.push(`<rect id="bar-${b.id}" x="${PLOT_X}" y="${num(y)}" width="${num(w)}" height="${BAR_H}" fill="${b.fill}"/>`);
    // A white halo keeps the value readable where the target line crosses it.
    out.push(`<text class="value" x="${num(PLOT_X + w + 6)}" y="${num(y + BAR_H / 2 + 4)}" stroke="#ffffff" stroke-width="3" paint-order="stroke">${escapeXml(b.value === null ? 'not measured' : `${formatValue(b.value)} ${s.unit}`)}</text>`);
  });

  // Target line: where our bar must end (or not pass) for the target ratio.
  if (targetAt !== null && s.target !== null) {
    const tx = num(x(targetAt));
    out.push(`<line id="target" x1="${tx}" y1="${TOP - 8}" x2="${tx}" y2="${num(axisY)}" stroke="${TARGET_STROKE}" stroke-width="2" stroke-dasharray="5,3"/>`);
    out.push(`<text class="target" x="${tx}" y="${TOP - 12}" text-anchor="middle" fill="${TARGET_STROKE}">${escapeXml(`target ${formatTarget(s.target)} peer`)}</text>`);
  }

  const verdict = s.met === null ? '' : s.met ? ': met' : ': missed';
  const ratioLine = `ours / peer ${formatRatio(s.ratio, s.target)}${s.target === null ? '' : ` · target ${formatTarget(s.target)}${verdict}`}`;
  out.push(`<text id="ratio" x="12" y="${num(axisY + 56)}" font-weight="bold" fill="${s.met === false ? TARGET_STROKE : '#222222'}">${escapeXml(ratioLine)}</text>`);
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}
