/**
 * The one place `@peculiar/x509` is loaded. The library needs `reflect-metadata` before it
 * is evaluated and a WebCrypto provider before first use; every other `certs/` file imports
 * `x509` (and `webcrypto`) from here so both are always in place.
 */
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { webcrypto } from 'node:crypto';

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

export { x509, webcrypto };

/** WebCrypto types (the project compiles without the DOM lib, so they come from node:crypto). */
export type CryptoKey = webcrypto.CryptoKey;
export type CryptoKeyPair = webcrypto.CryptoKeyPair;
export type Algorithm = webcrypto.Algorithm;
export type EcdsaParams = webcrypto.EcdsaParams;
export type EcKeyImportParams = webcrypto.EcKeyImportParams;
export type RsaHashedImportParams = webcrypto.RsaHashedImportParams;
export type RsaHashedKeyGenParams = webcrypto.RsaHashedKeyGenParams;

/** OID of the subjectAltName extension (RFC 5280 4.2.1.6). */
export const OID_SAN = '2.5.29.17';
/** OID of the basicConstraints extension (RFC 5280 4.2.1.9). */
export const OID_BASIC_CONSTRAINTS = '2.5.29.19';
/** OID of the keyUsage extension (RFC 5280 4.2.1.3). */
export const OID_KEY_USAGE = '2.5.29.15';
/** OID of the extKeyUsage extension (RFC 5280 4.2.1.12). */
export const OID_EXT_KEY_USAGE = '2.5.29.37';
/** OID of the subjectKeyIdentifier extension (RFC 5280 4.2.1.2). */
export const OID_SKI = '2.5.29.14';
/** OID of the authorityKeyIdentifier extension (RFC 5280 4.2.1.1). */
export const OID_AKI = '2.5.29.35';

/** Splits a PEM text holding any number of certificates into parsed certificates (in order). */
export function parseCertificates(pem: string): x509.X509Certificate[] {
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  return blocks.map((b) => new x509.X509Certificate(b));
}

/** PEM of a certificate, ending with a newline (so PEMs concatenate into valid bundles). */
export function pemOf(cert: x509.X509Certificate): string {
  return `${cert.toString('pem').trimEnd()}\n`;
}
