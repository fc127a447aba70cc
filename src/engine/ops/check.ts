// `check`: the format's consistency check, with qemu-img's report.
import type { CheckReport } from '../block/device.js';
import type { FileAccessPolicy } from '../policy.js';
import { openImage } from '../block/open.js';
import { InvalidArgument, UnsupportedFeature } from '../errors.js';

export async function checkImage(file: string, opts: { format?: string; repair?: 'leaks' | 'all'; policy?: FileAccessPolicy } = {}): Promise<CheckReport> {
  if (opts.repair !== undefined && opts.repair !== 'leaks' && opts.repair !== 'all') {
    throw new InvalidArgument(`invalid repair mode '${String(opts.repair)}' (leaks or all)`);
  }
  const dev = await openImage(file, { format: opts.format, writable: opts.repair !== undefined, openBacking: false, policy: opts.policy });
  try {
    if (!dev.check) throw new UnsupportedFeature('this image format does not support checks', { file });
    const r = await dev.check({ repair: opts.repair });
    if (opts.repair) await dev.flush?.();
    return r;
  } finally {
    await dev.close();
  }
}

/** qemu-img check --output json: zero counts of problems are left out, like qemu does. */
export function checkJson(r: CheckReport): Record<string, unknown> {
  const o: Record<string, unknown> = {};
  if (r.imageEndOffset !== undefined) o['image-end-offset'] = r.imageEndOffset;
  if (r.totalClusters !== undefined) o['total-clusters'] = r.totalClusters;
  o['check-errors'] = r.checkErrors;
  if (r.leaks) o.leaks = r.leaks;
  if (r.corruptions) o.corruptions = r.corruptions;
  if (r.leaksFixed) o['leaks-fixed'] = r.leaksFixed;
  if (r.corruptionsFixed) o['corruptions-fixed'] = r.corruptionsFixed;
  if (r.allocatedClusters !== undefined) o['allocated-clusters'] = r.allocatedClusters;
  if (r.fragmentedClusters) o['fragmented-clusters'] = r.fragmentedClusters;
  if (r.compressedClusters) o['compressed-clusters'] = r.compressedClusters;
  o.filename = r.filename;
  o.format = r.format;
  return o;
}

export function checkHuman(r: CheckReport): string {
  const lines = [...r.messages];
  if (r.corruptionsFixed || r.leaksFixed) {
    lines.push(`The following inconsistencies were found and repaired:`, '', `    ${r.leaksFixed ?? 0} leaked clusters`, `    ${r.corruptionsFixed ?? 0} corruptions`, '');
  }
  if (r.corruptions === 0 && r.leaks === 0 && r.checkErrors === 0) lines.push('No errors were found on the image.');
  else {
    if (r.corruptions) lines.push('', `${r.corruptions} errors were found on the image.`, 'Data may be corrupted, or further writes to the image may corrupt it.');
    if (r.leaks) lines.push('', `${r.leaks} leaked clusters were found on the image.`, 'This means waste of disk space, but no harm to data.');
    if (r.checkErrors) lines.push('', `${r.checkErrors} internal errors have occurred during the check.`);
  }
  if (r.totalClusters && r.allocatedClusters !== undefined) {
    const pct = (n: number | undefined) => ((100 * (n ?? 0)) / r.totalClusters!).toFixed(2);
    const frag = r.allocatedClusters ? ((100 * (r.fragmentedClusters ?? 0)) / r.allocatedClusters).toFixed(2) : '0.00';
    const comp = r.allocatedClusters ? ((100 * (r.compressedClusters ?? 0)) / r.allocatedClusters).toFixed(2) : '0.00';
    lines.push(`${r.allocatedClusters}/${r.totalClusters} = ${pct(r.allocatedClusters)}% allocated, ${frag}% fragmented, ${comp}% compressed clusters`);
  }
  if (r.imageEndOffset !== undefined) lines.push(`Image end offset: ${r.imageEndOffset}`);
  return lines.join('\n');
}
