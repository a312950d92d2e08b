/** The sample configuration in a fresh temporary directory, removed again at shutdown. */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ECHO_SERVICE_NAME, HTTP_SERVICES, sampleConfig, writeConfigFile } from '../sample-config.ts';
import type { DemoStep } from '../step.ts';
import { SAMPLE_BACKENDS } from './start-backends.ts';

export const writeConfig: DemoStep = {
  title: 'write the sample config',
  timeoutMs: 5000,
  skip: (ctx) => (ctx.options.configDir !== null ? `--config given: using ${ctx.options.configDir} as is` : null),
  async run(ctx) {
    if (ctx.backends.length === 0) throw new Error('no echo backends: the step that starts them did not run');
    const dir = await mkdtemp(join(tmpdir(), 'palisade-demo-'));
    ctx.defer('sample config directory', () => rm(dir, { recursive: true, force: true }));
    const endpoints = ctx.backends.map((b, i) => ({ name: b.name, host: b.host, port: b.port, weight: SAMPLE_BACKENDS[i]!.weight }));
    const files = sampleConfig(endpoints);
    for (const [file, text] of Object.entries(files)) await writeConfigFile(dir, file, text);
    ctx.configDir = dir;
    ctx.weights = endpoints.map((e) => e.weight);
    return [
      `${dir}: ${Object.keys(files).join(', ')}`,
      `Service ${ECHO_SERVICE_NAME}: ${endpoints.map((e) => `${e.name} weight ${e.weight}`).join(', ')}; Route ${ECHO_SERVICE_NAME}: xds:///${ECHO_SERVICE_NAME} → Service ${ECHO_SERVICE_NAME}`,
      `Services ${HTTP_SERVICES.map((h) => `${h.name} (http, port ${h.port})`).join(' and ')}: no endpoints; their sidecars will register`,
    ];
  },
};
