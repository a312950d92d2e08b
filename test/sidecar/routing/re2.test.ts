/** RE2 FullMatch and GlobalReplace substitutions on JS RegExp. */
import { describe, expect, it } from 'vitest';
import { compileFullMatch, compileRegexRewrite } from '../../../sidecar/routing/re2.ts';

describe('compileFullMatch', () => {
  it.each([
    ['a|ab', 'ab', true],
    ['a|ab', 'abc', false],
    ['/users/[0-9]+', '/users/1', true],
    ['/users/[0-9]+', 'x/users/1', false],
    ['(?m)^a$', 'a\nb', false],
    ['(?m)^a$\\n^b$', 'a\nb', true],
    ['(?s).*', 'a\nb', true],
    ['(?P<id>[0-9]+)', '42', true],
  ])('%j against %j → %s', (pattern, subject, want) => {
    const re = compileFullMatch(pattern);
    if (typeof re === 'string') throw new Error(re);
    expect(re.test(subject)).toBe(want);
  });

  it('returns the reason for a pattern JS cannot run', () => {
    expect(compileFullMatch('(?U)a+')).toBe('RE2 flag U (ungreedy) has no JS equivalent');
  });
});

describe('compileRegexRewrite', () => {
  it.each([
    ['^/service/([^/]+)(/.*)$', '\\2/instance/\\1', '/service/foo/v1', '/v1/instance/foo'],
    ['o', '0', '/foo/boo', '/f00/b00'],
    ['(a)', '\\10', 'a', 'a0'],
    ['a', '$1\\\\', 'a', '$1\\'],
    ['b+', '[\\0]', 'abbc', 'a[bb]c'],
  ])('%j with %j rewrites %j to %j', (pattern, substitution, input, output) => {
    const r = compileRegexRewrite(pattern, substitution);
    if (typeof r === 'string') throw new Error(r);
    expect(input.replace(r.pattern, r.substitution)).toBe(output);
  });

  it.each([
    ['(a)', '\\2', 'substitution refers to group 2 but the pattern has 1'],
    ['a', '\\x', 'substitution has an invalid escape \\x'],
    ['a', 'b\\', 'substitution has an invalid escape at its end'],
  ])('refuses %j with %j', (pattern, substitution, reason) => {
    expect(compileRegexRewrite(pattern, substitution)).toBe(reason);
  });
});
