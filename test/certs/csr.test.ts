import { describe, expect, it } from 'vitest';
import { createCsr } from '../../certs/csr.ts';
import { generateKeyPair, KEY_TYPES } from '../../certs/keys.ts';
import { webcrypto, x509 } from '../../certs/x509.ts';

describe('createCsr', () => {
  it.each(KEY_TYPES)('creates a self-signed %s CSR with the SPIFFE ID as its only SAN and an empty subject', async (type) => {
    const keys = await generateKeyPair(type);
    const pem = await createCsr(keys, 'spiffe://example.org/ns/a/sa/b');
    const csr = new x509.Pkcs10CertificateRequest(pem);
    expect(await csr.verify()).toBe(true);
    expect(csr.subject).toBe('');
    expect(csr.getExtension('2.5.29.17') && new x509.SubjectAlternativeNameExtension(csr.getExtension('2.5.29.17')!.rawData).names.toJSON()).toEqual([
      { type: 'url', value: 'spiffe://example.org/ns/a/sa/b' },
    ]);
    expect(Buffer.from(csr.publicKey.rawData).equals(Buffer.from(await webcrypto.subtle.exportKey('spki', keys.publicKey)))).toBe(true);
    expect(pem).not.toContain('PRIVATE KEY');
  });

  it('refuses an invalid SPIFFE ID with PAL_ERR_CERTS_INVALID_OPTION', async () => {
    await expect(createCsr(await generateKeyPair(), 'spiffe://Example.org/a')).rejects.toMatchObject({
      code: 'PAL_ERR_CERTS_INVALID_OPTION',
      message: 'spiffeId is invalid: trust domain "Example.org" may contain only lowercase letters, digits, ".", "-" and "_", got "spiffe://Example.org/a"',
    });
  });
});
