#!/usr/bin/env node
// The palisade command. The CLI is TypeScript run as is: Node >= 22.18 strips types
// natively. npm scripts run on the pinned Node 24 from the `node` dependency.
const [major, minor] = process.versions.node.split('.').map(Number);
if (major < 22 || (major === 22 && minor < 18)) {
  console.error(`palisade needs Node.js >= 22.18, this is ${process.version}. ` +
    'Run it through npm (npm start, npx palisade), which uses the Node 24 pinned in package.json.');
  process.exit(1);
}
const { main } = await import('../cli/main.ts');
process.exitCode = await main(process.argv.slice(2));
