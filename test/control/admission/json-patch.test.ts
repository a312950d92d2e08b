/** RFC 6902 JSON Patch: the operations admission policies answer, applied all or nothing. */
import { describe, expect, it } from 'vitest';
import { applyPatch, parsePatch, type PatchOperation } from '../../../control/admission/json-patch.ts';

const DOC = { metadata: { name: 'echo', labels: { app: 'echo' } }, spec: { port: 80, hosts: ['a', 'b'] } };

describe('applyPatch', () => {
  it.each<[string, PatchOperation[], unknown]>([
    ['adds a label', [{ op: 'add', path: '/metadata/labels/team', value: 'x' }], { ...DOC, metadata: { name: 'echo', labels: { app: 'echo', team: 'x' } } }],
    ['adds to the end of a list with -', [{ op: 'add', path: '/spec/hosts/-', value: 'c' }], { ...DOC, spec: { port: 80, hosts: ['a', 'b', 'c'] } }],
    ['inserts into a list', [{ op: 'add', path: '/spec/hosts/0', value: 'z' }], { ...DOC, spec: { port: 80, hosts: ['z', 'a', 'b'] } }],
    ['replaces a value', [{ op: 'replace', path: '/spec/port', value: 81 }], { ...DOC, spec: { port: 81, hosts: ['a', 'b'] } }],
    ['removes a key', [{ op: 'remove', path: '/metadata/labels' }], { ...DOC, metadata: { name: 'echo' } }],
    ['moves a value', [{ op: 'move', from: '/metadata/labels/app', path: '/metadata/labels/name' }], { ...DOC, metadata: { name: 'echo', labels: { name: 'echo' } } }],
    ['copies a value', [{ op: 'copy', from: '/spec/port', path: '/spec/adminPort' }], { ...DOC, spec: { port: 80, hosts: ['a', 'b'], adminPort: 80 } }],
    ['passes a test that holds', [{ op: 'test', path: '/spec/hosts', value: ['a', 'b'] }], DOC],
    ['unescapes ~1 and ~0', [{ op: 'add', path: '/metadata/labels/palisade.dev~1owner~0x', value: 'y' }], { ...DOC, metadata: { name: 'echo', labels: { app: 'echo', 'palisade.dev/owner~x': 'y' } } }],
  ])('%s', (_what, ops, expected) => {
    expect(applyPatch(DOC, ops)).toEqual({ valid: true, result: expected });
    expect(DOC.spec.port).toBe(80); // the input is never touched
  });

  it.each<[string, PatchOperation[], string]>([
    ['a missing parent', [{ op: 'add', path: '/status/x', value: 1 }], 'operation 0 (add /status/x): path not found: /status/x'],
    ['replacing what is absent', [{ op: 'replace', path: '/spec/nope', value: 1 }], 'operation 0 (replace /spec/nope): path not found: /spec/nope'],
    ['an index out of range', [{ op: 'add', path: '/spec/hosts/5', value: 'x' }], 'operation 0 (add /spec/hosts/5): index 5 is out of range (length 2)'],
    ['a failing test', [{ op: 'add', path: '/spec/port', value: 1 }, { op: 'test', path: '/spec/port', value: 80 }], 'operation 1 (test /spec/port): value is 1, not 80'],
    ['a pointer without a slash', [{ op: 'remove', path: 'spec' }], 'operation 0 (remove spec): "spec" is not a JSON pointer (must start with "/")'],
  ])('fails whole on %s', (_what, ops, message) => {
    expect(applyPatch(DOC, ops)).toEqual({ valid: false, errors: message });
  });
});

describe('parsePatch', () => {
  it.each<[unknown, string]>([
    [{ op: 'add' }, 'must be an array of JSON Patch operations, got object'],
    [['x'], 'operation 0 must be an object, got string'],
    [[{ op: 'merge', path: '/a' }], 'operation 0: op must be one of add, remove, replace, move, copy, test, got "merge"'],
    [[{ op: 'add', path: '/a' }], 'operation 0 (add) needs a value'],
    [[{ op: 'copy', path: '/a' }], 'operation 0 (copy) needs from'],
  ])('refuses %j', (value, message) => {
    expect(parsePatch(value)).toEqual({ valid: false, errors: message });
  });

  it('reads well-formed operations as they are', () => {
    const ops = [{ op: 'add', path: '/a', value: null }, { op: 'move', from: '/a', path: '/b' }];
    expect(parsePatch(ops)).toEqual({ valid: true, result: ops });
  });
});
