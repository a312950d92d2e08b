/**
 * The SVG chart of a scenario: parsed by a real XML parser (Python's expat, through
 * xml.dom.minidom), checked to be an SVG 1.1 document, and its bars measured: their widths
 * keep the figures' ratio and the target line sits at peer × target.
 */
import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';

import { scenario, type ScenarioInput } from '../../../bench/common/report.ts';
import { escapeXml, niceStep, svgChart } from '../../../bench/report/svg-chart.ts';

interface ParsedElement {
  tag: string;
  attrs: Record<string, string>;
  text: string;
}
interface Parsed {
  root: ParsedElement;
  elements: ParsedElement[];
}

/** Parses `svg` with expat (raises on anything not well-formed) and lists every element with its attributes and text. */
function parseXml(svg: string): Parsed {
  const script = `
import json, sys
from xml.dom import minidom
doc = minidom.parseString(sys.stdin.buffer.read())
def text(n):
    return ''.join(c.data for c in n.childNodes if c.nodeType in (c.TEXT_NODE, c.CDATA_SECTION_NODE))
def el(n):
    return {'tag': n.tagName, 'attrs': {k: v for k, v in n.attributes.items()}, 'text': text(n)}
root = doc.documentElement
json.dump({'root': el(root), 'elements': [el(n) for n in root.getElementsByTagName('*')]}, sys.stdout)
`;
  return JSON.parse(execFileSync('python3', ['-c', script], { input: svg, encoding: 'utf8' })) as Parsed;
}

const base: ScenarioInput = {
  id: 'full-chain-rps', title: 'sidecar rps, full chain vs no filters', unit: 'rps', better: 'higher',
  ours: { label: 'full chain', value: 7321.4 }, peer: { label: 'no filters', value: 10458.2 }, target: { op: '>=', value: 0.7 },
};

const byId = (p: Parsed, id: string) => p.elements.find((e) => e.attrs.id === id);
const num = (e: ParsedElement | undefined, a: string) => Number(e?.attrs[a]);

describe('svgChart', () => {
  it('writes a well-formed SVG 1.1 document with a title', () => {
    const svg = svgChart(scenario(base));
    expect(svg.startsWith('<?xml version="1.0" encoding="UTF-8"?>\n<svg ')).toBe(true);
    const p = parseXml(svg);
    expect(p.root.tag).toBe('svg');
    expect(p.root.attrs).toMatchObject({ xmlns: 'http://www.w3.org/2000/svg', version: '1.1', width: '720' });
    expect(p.root.attrs.viewBox).toBe(`0 0 720 ${p.root.attrs.height}`);
    expect(p.elements.find((e) => e.tag === 'title')?.text).toBe('sidecar rps, full chain vs no filters: full chain 7\u2009321 rps, no filters 10\u2009458 rps, ratio 0.70×');
  });

  it.each([
    ['higher is better', base],
    ['lower is better, ours the larger', { ...base, better: 'lower', unit: 'µs', ours: { label: 'global check', value: 61.25 }, peer: { label: 'redis-benchmark INCR', value: 48.5 }, target: { op: '<=', value: 1.5 } }],
    ['large figures, no target', { ...base, ours: { label: 'a', value: 123456 }, peer: { label: 'b', value: 98765 }, target: null }],
  ] as const)('draws bars whose widths keep the figures\' ratio (%s)', (_name, input) => {
    const s = scenario(input as ScenarioInput);
    const p = parseXml(svgChart(s));
    const ours = byId(p, 'bar-ours');
    const peer = byId(p, 'bar-peer');
    expect(ours?.tag).toBe('rect');
    expect(num(ours, 'x')).toBe(num(peer, 'x'));
    // Widths are written with 3 decimals, so the ratio holds to about 1e-3 px of the shorter bar.
    expect(num(ours, 'width') / num(peer, 'width')).toBeCloseTo(s.ours.value! / s.peer.value!, 4);
    // Every figure fits on the axis.
    const axis = p.elements.find((e) => e.attrs.class === 'axis');
    expect(num(ours, 'x') + num(ours, 'width')).toBeLessThanOrEqual(num(axis, 'x2') + 1e-9);
    expect(num(peer, 'x') + num(peer, 'width')).toBeLessThanOrEqual(num(axis, 'x2') + 1e-9);
  });

  it('puts the target line where our bar would end at peer × target, and states the ratio and the verdict', () => {
    const s = scenario(base);
    const p = parseXml(svgChart(s));
    const peer = byId(p, 'bar-peer');
    const line = byId(p, 'target');
    const fromOrigin = num(line, 'x1') - num(peer, 'x');
    expect(num(line, 'x1')).toBe(num(line, 'x2'));
    expect(fromOrigin / num(peer, 'width')).toBeCloseTo(0.7, 4);
    expect(byId(p, 'ratio')?.text).toBe('ours / peer 0.70× · target ≥ 0.7×: met');
    expect(p.elements.find((e) => e.attrs.class === 'target')?.text).toBe('target ≥ 0.7× peer');
  });

  it('labels the axis with ticks from 0 and the unit', () => {
    const p = parseXml(svgChart(scenario(base)));
    const ticks = p.elements.filter((e) => e.attrs.class === 'tick').map((e) => e.text);
    expect(ticks).toEqual(['0', '2k', '4k', '6k', '8k', '10k', '12k']);
    expect(p.elements.find((e) => e.attrs.class === 'unit')?.text).toBe('rps (higher is better)');
  });

  it('says a missed target and a figure that was not measured', () => {
    const missed = parseXml(svgChart(scenario({ ...base, ours: { label: 'full chain', value: 5000 } })));
    expect(byId(missed, 'ratio')?.text).toBe('ours / peer 0.48× · target ≥ 0.7×: missed');
    const none = parseXml(svgChart(scenario({ ...base, ours: { label: 'full chain', value: null } })));
    expect(num(byId(none, 'bar-ours'), 'width')).toBe(0);
    expect(none.elements.filter((e) => e.attrs.class === 'value').map((e) => e.text)).toEqual(['not measured', '10\u2009458 rps']);
    expect(byId(none, 'ratio')?.text).toBe('ours / peer — · target ≥ 0.7×');
  });

  it('escapes markup in titles and labels', () => {
    const p = parseXml(svgChart(scenario({ ...base, title: 'a <b> & "c"', ours: { label: "it's <ours>", value: 1 } })));
    expect(p.elements.find((e) => e.tag === 'text')?.text).toBe('a <b> & "c"');
    expect(p.elements.filter((e) => e.attrs.class === 'label').map((e) => e.text)).toEqual(["it's <ours>", 'no filters']);
    expect(escapeXml(`<&>"'`)).toBe('&lt;&amp;&gt;&quot;&apos;');
  });

  it.each([[10458, 2000], [1.4, 0.5], [48.5, 10], [130000, 50000], [0, 1]])('picks a 1-2-5 tick step for an axis up to %s', (max, step) => {
    expect(niceStep(max)).toBe(step);
  });
});
