/** Placeholder replaced below. */
export const summary = 'run the whole system on embedded defaults and show it working';
export const help = 'Usage: palisade demo [--once]\n';
export async function run(): Promise<number> {
  return 1;
}
