/**
 * A throwaway PKI made with the `openssl` CLI (an implementation independent of ours): a CA,
 * a server certificate for 127.0.0.1 / localhost, and client certificates with a URI SAN
 * (a SPIFFE ID), all ECDSA P-256. For transport tests that must not depend on certs/.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface Pem {
  readonly key: Buffer;
  readonly cert: Buffer;
}

export interface TestPki {
  readonly ca: Buffer;
  readonly server: Pem;
  /** A client certificate whose only SAN is `uri`. */
  client(uri: string): Pem;
  /** Another server certificate for 127.0.0.1 / localhost (a rotation), with a new key. */
  anotherServer(): Pem;
  /** Removes the temporary directory. */
  dispose(): void;
}

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

/** Signs a new P-256 key's certificate with the CA, with `ext` as its extensions. */
function issue(dir: string, name: string, subject: string, ext: string): Pem {
  openssl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', `${name}.key`], dir);
  openssl(['req', '-new', '-key', `${name}.key`, '-subj', subject, '-out', `${name}.csr`], dir);
  writeFileSync(join(dir, `${name}.ext`), ext);
  openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '1', '-sha256', '-extfile', `${name}.ext`, '-out', `${name}.pem`], dir);
  return { key: readFileSync(join(dir, `${name}.key`)), cert: readFileSync(join(dir, `${name}.pem`)) };
}

export function makeTestPki(): TestPki {
  const dir = mkdtempSync(join(tmpdir(), 'palisade-pki-'));
  openssl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', 'ca.key'], dir);
  openssl(['req', '-x509', '-new', '-key', 'ca.key', '-subj', '/CN=palisade test CA', '-days', '1', '-sha256', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign', '-out', 'ca.pem'], dir);
  const serverExt = 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n';
  const server = issue(dir, 'server', '/CN=localhost', serverExt);
  let n = 0;
  return {
    ca: readFileSync(join(dir, 'ca.pem')),
    server,
    anotherServer: () => issue(dir, `server${n++}`, '/CN=localhost', serverExt),
    client: (uri) => issue(dir, `client${n++}`, '/O=palisade test', `basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\nsubjectAltName=URI:${uri}\n`),
    dispose: () => rmSync(dir, { recursive: true, force: true }),
  };
}
