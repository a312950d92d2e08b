/**
 * `palisade certs`: workload identity. Join tokens go through the control plane's admin API;
 * the CA commands (init-root, inspect, in certs-ca.ts; new-intermediate, in
 * certs-intermediate.ts) work on local files.
 *
 *   palisade certs init-root --trust-domain TD (--root-key-out FILE | --keep-root-key)   create the CA state
 *   palisade certs inspect FILE [--bundle BUNDLE --trust-domain TD]                     show / verify certificates
 *   palisade certs new-intermediate --root-key FILE [--new-kek]                         replace a lost intermediate (certs-intermediate.ts)
 *   palisade certs token --namespace NS --service-account SA [--ttl 1h]   mint a one-time join token
 *   palisade certs tokens                                                 list join tokens (no secrets)
 *   palisade certs revoke-token ID                                        revoke an unused token
 *   palisade certs list                                                   issued workload certificates
 *   palisade certs revoke SERIAL [--reason R]                             revoke one (no renewal; listed in the CRL)
 *   palisade certs rotate-root start|status|finish                        root rotation (certs-rotate.ts)
 */
import type { IssuedCert } from '../../certs/issued-store.ts';
import type { JoinTokenInfo } from '../../certs/join-token.ts';
import { checkAddress, checkOutput, guard, parseFlags, UsageError } from '../args.ts';
import { formatTable } from '../table.ts';
import { call, refusal } from './certs-admin.ts';
import { caFlagsHelp, caHelp, initRoot, inspectFile } from './certs-ca.ts';
import { newIntermediate, newIntermediateFlagsHelp, newIntermediateHelp } from './certs-intermediate.ts';
import { rotateRoot, rotateRootFlagsHelp, rotateRootHelp } from './certs-rotate.ts';

const SUBCOMMANDS = 'init-root, inspect, new-intermediate, token, tokens, revoke-token, list, revoke or rotate-root';

export const help = `Usage: palisade certs <subcommand> [flags]

Subcommands:
${caHelp}${newIntermediateHelp}  token --namespace NS --service-account SA [--ttl DURATION]
                     mint a one-time join token for the identity
                     spiffe://<trust domain>/ns/NS/sa/SA; prints the token alone on stdout
                     (it is shown once: the control plane keeps only its hash)
  tokens             list join tokens: id, identity, expiry, state (never the secrets)
  revoke-token ID    revoke a token that has not been used
  list               issued workload certificates: serial, SPIFFE ID, expiry, state
  revoke SERIAL [--reason TEXT]
                     revoke an issued certificate: it can no longer renew, and the CRL
                     pushed to every Envoy and sidecar lists it
${rotateRootHelp}
Flags:
  --namespace NS             the workload's namespace (token)
  --service-account SA       the workload's service account (token)
  --ttl DURATION             how long the token may be used, e.g. 30m, 24h; at most 7d (168h)  (default 1h)
  --reason TEXT              why a certificate is revoked (revoke)      (default unspecified)
${caFlagsHelp}${newIntermediateFlagsHelp}${rotateRootFlagsHelp}  --admin-address HOST:PORT  the control plane's admin address          (default 127.0.0.1:18001)
  -o, --output table|json    output format                              (default table)
  -h, --help                 this help
`;

function table(tokens: readonly JoinTokenInfo[]): string {
  return formatTable([['ID', 'NAMESPACE', 'SERVICE ACCOUNT', 'EXPIRES', 'STATE'], ...tokens.map((t) => [t.id, t.namespace, t.serviceAccount, t.expiresAt, t.state])], '(no join tokens)');
}

type IssuedListEntry = IssuedCert & { state: string };

function issuedTable(certs: readonly IssuedListEntry[]): string {
  return formatTable([['SERIAL', 'SPIFFE ID', 'NOT AFTER', 'STATE'], ...certs.map((c) => [c.serial, c.spiffeId, c.notAfter, c.state])], '(no certificates issued)');
}

export function run(argv: string[]): Promise<number> {
  return guard('certs', help, async () => {
    const [sub, ...rest] = argv;
    if (sub === 'init-root') return initRoot(rest);
    if (sub === 'rotate-root') return rotateRoot(rest);
    if (sub === 'new-intermediate') return newIntermediate(rest);
    if (sub === 'inspect') return inspectFile(rest[0] !== undefined && !rest[0].startsWith('-') ? rest.shift() : undefined, rest);
    // revoke-token takes the id as its one positional argument.
    const positional = (sub === 'revoke-token' || sub === 'revoke') && rest[0] !== undefined && !rest[0].startsWith('-') ? rest.shift()! : undefined;
    const flags = parseFlags(rest, {
      namespace: { type: 'string' },
      'service-account': { type: 'string' },
      ttl: { type: 'string', default: '1h' },
      reason: { type: 'string', default: 'unspecified' },
      'admin-address': { type: 'string', default: '127.0.0.1:18001' },
      output: { type: 'string', short: 'o', default: 'table' },
    });
    const output = checkOutput(flags.output);
    const admin = checkAddress('--admin-address', flags['admin-address']);
    switch (sub) {
      case 'token': {
        if (flags.namespace === undefined) throw new UsageError('--namespace is required');
        if (flags['service-account'] === undefined) throw new UsageError('--service-account is required');
        const { status, json } = await call(admin, 'POST', '/api/v1/certs/tokens', { namespace: flags.namespace, serviceAccount: flags['service-account'], ttl: flags.ttl });
        if (status !== 201) throw refusal(status, json);
        const info = json.info as JoinTokenInfo;
        if (output === 'json') process.stdout.write(`${JSON.stringify(json, null, 2)}\n`);
        else {
          process.stdout.write(`${String(json.token)}\n`);
          process.stderr.write(`join token ${info.id} for namespace ${info.namespace}, service account ${info.serviceAccount}; one use, expires ${info.expiresAt}\n`);
        }
        return 0;
      }
      case 'tokens': {
        const { status, json } = await call(admin, 'GET', '/api/v1/certs/tokens');
        if (status !== 200) throw refusal(status, json);
        const tokens = json.tokens as JoinTokenInfo[];
        process.stdout.write(output === 'json' ? `${JSON.stringify(tokens, null, 2)}\n` : table(tokens));
        return 0;
      }
      case 'revoke-token': {
        const id = positional;
        if (id === undefined || !/^[0-9a-f]{16}$/.test(id)) {
          throw new UsageError(`revoke-token needs the token id (16 hex characters, see palisade certs tokens), got ${JSON.stringify(id ?? '')}`);
        }
        const { status, json } = await call(admin, 'DELETE', `/api/v1/certs/tokens/${id}`);
        if (status !== 200) throw refusal(status, json);
        process.stdout.write(output === 'json' ? `${JSON.stringify(json, null, 2)}\n` : `revoked join token ${id}\n`);
        return 0;
      }
      case 'list': {
        const { status, json } = await call(admin, 'GET', '/api/v1/certs/issued');
        if (status !== 200) throw refusal(status, json);
        const certs = json.certs as IssuedListEntry[];
        process.stdout.write(output === 'json' ? `${JSON.stringify(certs, null, 2)}\n` : issuedTable(certs));
        return 0;
      }
      case 'revoke': {
        const serial = positional;
        if (serial === undefined || !/^[0-9a-fA-F:]{1,128}$/.test(serial)) {
          throw new UsageError(`revoke needs the certificate serial (hex, see palisade certs list), got ${JSON.stringify(serial ?? '')}`);
        }
        const { status, json } = await call(admin, 'POST', `/api/v1/certs/issued/${serial}/revoke`, { reason: flags.reason });
        if (status !== 200) throw refusal(status, json);
        process.stdout.write(output === 'json' ? `${JSON.stringify(json, null, 2)}\n` : `revoked certificate ${(json.cert as IssuedListEntry).serial} (${(json.cert as IssuedListEntry).spiffeId})\n`);
        return 0;
      }
      default:
        throw new UsageError(sub === undefined ? `a subcommand is required: ${SUBCOMMANDS}` : `unknown subcommand ${JSON.stringify(sub)}: use ${SUBCOMMANDS}`);
    }
  });
}
