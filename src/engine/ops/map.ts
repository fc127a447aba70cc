// `map`: the combined allocation of an image and its backing chain, as qemu-img map
// prints it (same entries, merged the same way).
import type { FileAccessPolicy } from '../policy.js';
import { openImage } from '../block/open.js';
import { chainMap, chainDisplayNames } from '../block/chain.js';

export interface MapEntry {
  start: number;
  length: number;
  depth: number;
  present: boolean;
  zero: boolean;
  data: boolean;
  offset?: number;
  /** The layer's file name (human output's "File" column; not in the JSON). */
  filename: string;
}

function mergeable(a: MapEntry, b: MapEntry): boolean {
  return a.start + a.length === b.start && a.depth === b.depth && a.present === b.present && a.zero === b.zero
    && a.data === b.data && a.filename === b.filename
    && (a.offset === undefined ? b.offset === undefined : b.offset === a.offset + a.length);
}

export async function mapImage(file: string, opts: { format?: string; policy?: FileAccessPolicy; start?: number; length?: number } = {}): Promise<MapEntry[]> {
  const dev = await openImage(file, { format: opts.format, policy: opts.policy });
  try {
    const start = Math.min(opts.start ?? 0, dev.virtualSize);
    const length = Math.min(opts.length ?? dev.virtualSize - start, dev.virtualSize - start);
    const out: MapEntry[] = [];
    const names = chainDisplayNames(dev);
    for await (const r of chainMap(dev, start, length)) {
      const e: MapEntry = {
        start: r.offset, length: r.length, depth: r.depth, present: r.present,
        zero: r.kind === 'zero', data: r.kind === 'data', filename: names.get(r.device) ?? r.device.name,
      };
      if (r.hostOffset !== undefined && !r.compressed) e.offset = r.hostOffset;
      const last = out[out.length - 1];
      if (last && mergeable(last, e)) last.length += e.length;
      else out.push(e);
    }
    return out;
  } finally {
    await dev.close();
  }
}

/** qemu-img map --output json, byte for byte: one entry per line. */
export function mapJson(entries: MapEntry[]): string {
  const lines = entries.map((e) => {
    const off = e.offset !== undefined ? `, "offset": ${e.offset}` : '';
    return `{ "start": ${e.start}, "length": ${e.length}, "depth": ${e.depth}, "present": ${e.present}, "zero": ${e.zero}, "data": ${e.data}${off}}`;
  });
  return `[${lines.join(',\n')}]`;
}

const hex = (n: number) => (n === 0 ? '0' : `0x${n.toString(16)}`);

/** qemu-img map's human table: only runs stored plainly in a file. */
export function mapHuman(entries: MapEntry[]): string {
  const rows = [`${'Offset'.padEnd(16)}${'Length'.padEnd(16)}${'Mapped to'.padEnd(16)}File`];
  for (const e of entries) {
    if (!e.data || e.offset === undefined) continue;
    rows.push(`${hex(e.start).padEnd(16)}${hex(e.length).padEnd(16)}${hex(e.offset).padEnd(16)}${e.filename}`);
  }
  return rows.join('\n');
}
