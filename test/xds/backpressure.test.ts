/**
 * A proxy that stops reading must not make the server queue every push for it: once its
 * flow-control window is full, pushes stop, and the latest state goes out when it reads again.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { SnapshotCache } from '../../xds/cache/snapshot-cache.ts';
import { Snapshot } from '../../xds/cache/snapshot.ts';
import { AdsServer } from '../../xds/server/ads-server.ts';
import { CLUSTER_TYPE_URL, ENDPOINT_TYPE_URL } from '../../xds/resources/type-urls.ts';
import { RawSotwStream, testNode } from '../helpers/raw-ads-client.ts';
import { edsCluster, loadAssignment } from '../helpers/resources.ts';

let server: AdsServer | undefined;
let client: RawSotwStream | undefined;

afterEach(async () => {
  client?.close();
  await server?.close();
});

/** 300 clusters with long names: ~40 KB per CDS response. */
function bigSnapshot(version: number): Snapshot {
  const names = Array.from({ length: 300 }, (_, i) => `cluster-${i}-${'x'.repeat(100)}-v${version}`);
  return Snapshot.fromResources({ [CLUSTER_TYPE_URL]: names.map(edsCluster), [ENDPOINT_TYPE_URL]: names.map((n) => loadAssignment(n, [1])) });
}

describe('a proxy that stops reading', () => {
  it('gets a bounded number of responses while stalled, then the latest version', async () => {
    const cache = new SnapshotCache();
    let responses = 0;
    server = new AdsServer({ cache, callbacks: { onResponse: () => responses++ } });
    const address = `127.0.0.1:${await server.listen('127.0.0.1:0')}`;
    cache.setSnapshot('test', bigSnapshot(0));
    client = new RawSotwStream(address);
    client.send({ node: testNode(), typeUrl: CLUSTER_TYPE_URL });
    client.ack(await client.next());
    client.pause();

    const PUSHES = 60;
    for (let v = 1; v <= PUSHES; v++) {
      cache.setSnapshot('test', bigSnapshot(v));
      await new Promise((r) => setImmediate(r));
    }
    await new Promise((r) => setTimeout(r, 300));
    const whileStalled = responses;
    expect(whileStalled).toBeLessThan(PUSHES / 2);

    client.resume();
    const want = cache.getSnapshot('test')!.version(CLUSTER_TYPE_URL);
    let last = '';
    const deadline = Date.now() + 10_000;
    while (last !== want && Date.now() < deadline) last = (await client.next(5000)).versionInfo;
    expect(last).toBe(want);
    expect(responses).toBeLessThan(PUSHES / 2 + 2);
  });
});
