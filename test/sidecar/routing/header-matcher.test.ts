/** Route header matchers: Envoy's HeaderUtility::matchHeaders, one table per specifier. */
import { describe, expect, it } from 'vitest';
import { create, type MessageInitShape } from '@bufbuild/protobuf';
import { HeaderMatcherSchema, type HeaderMatcher } from '../../../xds/gen/envoy/config/route/v3/route_components_pb.js';
import { compileHeaderMatcher, headerMatches } from '../../../sidecar/routing/header-matcher.ts';

type Init = Exclude<MessageInitShape<typeof HeaderMatcherSchema>, HeaderMatcher>;
type Pattern = { case: 'exact' | 'prefix' | 'suffix' | 'contains'; value: string } | { case: 'safeRegex'; value: { regex: string } };
const str = (matchPattern: Pattern, ignoreCase = false): Init['headerMatchSpecifier'] => ({ case: 'stringMatch', value: { matchPattern, ignoreCase } });

function matches(init: Init, value: string | undefined, method = 'GET'): boolean {
  const errors: string[] = [];
  const m = compileHeaderMatcher(create(HeaderMatcherSchema, { name: 'X-Test', ...init }), 'h', errors);
  if (!m) throw new Error(errors.join('\n'));
  return headerMatches(m, method, 'authority', '/path', (n) => (n === 'x-test' ? value : undefined));
}

describe('header matchers', () => {
  it.each<[string, Init, string | undefined, boolean]>([
    ['exact hit', { headerMatchSpecifier: str({ case: 'exact', value: 'Prod' }) }, 'Prod', true],
    ['exact is case-sensitive', { headerMatchSpecifier: str({ case: 'exact', value: 'Prod' }) }, 'prod', false],
    ['exact ignore_case', { headerMatchSpecifier: str({ case: 'exact', value: 'Prod' }, true) }, 'pROD', true],
    ['exact missing', { headerMatchSpecifier: str({ case: 'exact', value: 'Prod' }) }, undefined, false],
    ['exact inverted, missing header still fails', { headerMatchSpecifier: str({ case: 'exact', value: 'Prod' }), invertMatch: true }, undefined, false],
    ['exact inverted, other value', { headerMatchSpecifier: str({ case: 'exact', value: 'Prod' }), invertMatch: true }, 'dev', true],
    ['prefix ignore_case', { headerMatchSpecifier: str({ case: 'prefix', value: 'Bearer ' }, true) }, 'bearer abc', true],
    ['suffix ignore_case', { headerMatchSpecifier: str({ case: 'suffix', value: '.EXAMPLE' }, true) }, 'a.example', true],
    ['suffix miss', { headerMatchSpecifier: str({ case: 'suffix', value: '.example' }) }, 'a.example.org', false],
    ['contains ignore_case', { headerMatchSpecifier: str({ case: 'contains', value: 'GZIP' }, true) }, 'br, gzip', true],
    ['contains miss', { headerMatchSpecifier: str({ case: 'contains', value: 'zstd' }) }, 'br, gzip', false],
    ['safe_regex whole value', { headerMatchSpecifier: str({ case: 'safeRegex', value: { regex: 'v[0-9]+' } }) }, 'v12', true],
    ['safe_regex is anchored', { headerMatchSpecifier: str({ case: 'safeRegex', value: { regex: 'v[0-9]+' } }) }, 'xv12', false],
    ['safe_regex with (?i)', { headerMatchSpecifier: str({ case: 'safeRegex', value: { regex: '(?i)v[0-9]+' } }) }, 'V3', true],
    ['present: true, present', { headerMatchSpecifier: { case: 'presentMatch', value: true } }, '', true],
    ['present: true, missing', { headerMatchSpecifier: { case: 'presentMatch', value: true } }, undefined, false],
    ['present: false, missing', { headerMatchSpecifier: { case: 'presentMatch', value: false } }, undefined, true],
    ['present: false, present', { headerMatchSpecifier: { case: 'presentMatch', value: false } }, 'x', false],
    ['present: true inverted, missing', { headerMatchSpecifier: { case: 'presentMatch', value: true }, invertMatch: true }, undefined, true],
    ['no specifier = present', {}, 'x', true],
    ['no specifier, missing', {}, undefined, false],
    ['range inside', { headerMatchSpecifier: { case: 'rangeMatch', value: { start: 100n, end: 200n } } }, '150', true],
    ['range end is exclusive', { headerMatchSpecifier: { case: 'rangeMatch', value: { start: 100n, end: 200n } } }, '200', false],
    ['range start is inclusive', { headerMatchSpecifier: { case: 'rangeMatch', value: { start: 100n, end: 200n } } }, '100', true],
    ['range trims whitespace, takes a sign', { headerMatchSpecifier: { case: 'rangeMatch', value: { start: 100n, end: 200n } } }, ' +150\t', true],
    ['range negative', { headerMatchSpecifier: { case: 'rangeMatch', value: { start: -10n, end: 0n } } }, '-5', true],
    ['range not a number', { headerMatchSpecifier: { case: 'rangeMatch', value: { start: 0n, end: 10n } } }, '5x', false],
    ['range empty', { headerMatchSpecifier: { case: 'rangeMatch', value: { start: 0n, end: 10n } } }, '', false],
    ['range beyond 2^53, exact', { headerMatchSpecifier: { case: 'rangeMatch', value: { start: 9007199254740993n, end: 9007199254740994n } } }, '9007199254740993', true],
    ['range beyond 2^53, off by one', { headerMatchSpecifier: { case: 'rangeMatch', value: { start: 9007199254740993n, end: 9007199254740994n } } }, '9007199254740992', false],
    ['range overflowing int64', { headerMatchSpecifier: { case: 'rangeMatch', value: { start: 0n, end: 2n ** 63n - 1n } } }, '99999999999999999999', false],
    ['range inverted', { headerMatchSpecifier: { case: 'rangeMatch', value: { start: 0n, end: 10n } }, invertMatch: true }, '50', true],
    ['legacy exact_match ""', { headerMatchSpecifier: { case: 'exactMatch', value: '' } }, 'anything', true],
    ['legacy exact_match "", missing', { headerMatchSpecifier: { case: 'exactMatch', value: '' } }, undefined, false],
    ['legacy prefix_match', { headerMatchSpecifier: { case: 'prefixMatch', value: 'ab' } }, 'abc', true],
    ['legacy suffix_match', { headerMatchSpecifier: { case: 'suffixMatch', value: 'bc' } }, 'abc', true],
    ['legacy contains_match', { headerMatchSpecifier: { case: 'containsMatch', value: 'b' } }, 'abc', true],
    ['legacy safe_regex_match', { headerMatchSpecifier: { case: 'safeRegexMatch', value: { regex: 'a.c' } } }, 'abc', true],
    ['treat_missing_header_as_empty', { headerMatchSpecifier: str({ case: 'exact', value: '' }), treatMissingHeaderAsEmpty: true }, undefined, true],
    ['treat_missing_header_as_empty, prefix', { headerMatchSpecifier: str({ case: 'prefix', value: 'a' }), treatMissingHeaderAsEmpty: true }, undefined, false],
  ])('%s', (_name, init, value, want) => {
    expect(matches(init, value)).toBe(want);
  });

  it('reads :method from the request, not the header lookup', () => {
    const init: Init = { name: ':method', headerMatchSpecifier: str({ case: 'exact', value: 'POST' }) };
    const m = compileHeaderMatcher(create(HeaderMatcherSchema, init), 'h', [])!;
    const lookup = () => 'POST';
    expect(headerMatches(m, 'POST', 'a', '/', () => undefined)).toBe(true);
    expect(headerMatches(m, 'GET', 'a', '/', lookup)).toBe(false);
  });
});
