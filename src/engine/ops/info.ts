// `info`: what an image is, with qemu-img's JSON keys.
import fs from 'node:fs/promises';
import path from 'node:path';
import type { BlockDevice, SnapshotInfo } from '../block/device.js';
import type { FileAccessPolicy } from '../policy.js';
import { openImage } from '../block/open.js';
import { chainDevices, chainDisplayNames } from '../block/chain.js';
import { humanSize } from './size.js';

export interface ImageInfo {
  'virtual-size': number;
  filename: string;
  format: string;
  'actual-size'?: number;
  'dirty-flag': boolean;
  'cluster-size'?: number;
  encrypted?: boolean;
  'backing-filename'?: string;
  'full-backing-filename'?: string;
  'backing-filename-format'?: string;
  'data-file'?: string;
  'format-specific'?: { type: string; data: Record<string, unknown> };
  snapshots?: Array<Record<string, unknown>>;
  /** Not in the JSON: extra lines for the human output. */
  humanLines?: string[];
}

/** Allocated bytes of a file (st_blocks × 512), as qemu-img's actual-size. */
async function actualSize(file: string): Promise<number | undefined> {
  try { return (await fs.stat(file)).blocks * 512; } catch { return undefined; }
}

function snapshotJson(s: SnapshotInfo): Record<string, unknown> {
  const o: Record<string, unknown> = {
    'icount': s.icount, 'vm-clock-nsec': s.vmClockNsec % 1e9, name: s.name, 'date-sec': s.dateSec, 'date-nsec': s.dateNsec,
    'vm-clock-sec': Math.floor(s.vmClockNsec / 1e9), id: s.id, 'vm-state-size': s.vmStateSize,
  };
  if (s.icount === undefined) delete o.icount;
  return o;
}

/** Info of one opened device (not its backing files). */
export async function deviceInfo(dev: BlockDevice, displayName = dev.name): Promise<ImageInfo> {
  const d = dev.describe();
  const info: ImageInfo = { 'virtual-size': dev.virtualSize, filename: displayName, format: dev.format, 'dirty-flag': d.dirty ?? false };
  const actual = await actualSize(dev.name);
  if (actual !== undefined) info['actual-size'] = actual;
  if (d.clusterSize !== undefined) info['cluster-size'] = d.clusterSize;
  if (d.encrypted) info.encrypted = true;
  if (d.backingFilename !== undefined) {
    info['backing-filename'] = d.backingFilename;
    info['full-backing-filename'] = path.isAbsolute(d.backingFilename) ? d.backingFilename : path.join(path.dirname(displayName), d.backingFilename);
    if (d.backingFormat) info['backing-filename-format'] = d.backingFormat;
  }
  if (d.dataFile !== undefined) info['data-file'] = d.dataFile;
  if (d.formatSpecific) info['format-specific'] = d.formatSpecific;
  if (d.snapshots && d.snapshots.length > 0) info.snapshots = d.snapshots.map(snapshotJson);
  if (d.humanLines) info.humanLines = d.humanLines;
  return info;
}

/** Info of an image, or of every image of its backing chain (top first) with `backingChain`. */
export async function imageInfo(file: string, opts: { format?: string; backingChain?: boolean; policy?: FileAccessPolicy } = {}): Promise<ImageInfo[]> {
  // Without --backing-chain the backing file is only named, not opened (like qemu-img).
  const dev = await openImage(file, { format: opts.format, openBacking: !!opts.backingChain, policy: opts.policy });
  try {
    const devs = opts.backingChain ? chainDevices(dev) : [dev];
    const names = chainDisplayNames(dev);
    return await Promise.all(devs.map((d) => deviceInfo(d, names.get(d))));
  } finally {
    await dev.close();
  }
}

/** The JSON form: qemu-img's keys only. */
export function infoJson(info: ImageInfo): Record<string, unknown> {
  const { humanLines: _h, ...rest } = info;
  return rest;
}

function humanValue(v: unknown, indent: string): string[] {
  if (v !== null && typeof v === 'object' && !Array.isArray(v)) {
    return Object.entries(v as Record<string, unknown>).flatMap(([k, x]) => {
      const key = k.replace(/-/g, ' ');
      if (x !== null && typeof x === 'object') return [`${indent}${key}:`, ...humanValue(x, indent + '    ')];
      return [`${indent}${key}: ${String(x)}`];
    });
  }
  if (Array.isArray(v)) return v.flatMap((x, i) => [`${indent}[${i}]:`, ...humanValue(x, indent + '    ')]);
  return [`${indent}${String(v)}`];
}

/** qemu-img's human layout. */
export function infoHuman(info: ImageInfo): string {
  const lines = [
    `image: ${info.filename}`,
    `file format: ${info.format}`,
    `virtual size: ${humanSize(info['virtual-size'])} (${info['virtual-size']} bytes)`,
    `disk size: ${info['actual-size'] !== undefined ? humanSize(info['actual-size']) : 'unavailable'}`,
  ];
  if (info['cluster-size'] !== undefined) lines.push(`cluster_size: ${info['cluster-size']}`);
  if (info.encrypted) lines.push('encrypted: yes');
  if (info['backing-filename'] !== undefined) {
    const full = info['full-backing-filename'];
    lines.push(`backing file: ${info['backing-filename']}${full && full !== info['backing-filename'] ? ` (actual path: ${full})` : ''}`);
    if (info['backing-filename-format']) lines.push(`backing file format: ${info['backing-filename-format']}`);
  }
  if (info['dirty-flag']) lines.push('cleanly shut down: no');
  if (info.snapshots?.length) {
    lines.push('Snapshot list:', snapshotTable(info.snapshots));
  }
  if (info['format-specific']) {
    lines.push('Format specific information:', ...humanValue(info['format-specific'].data, '    '));
  }
  if (info.humanLines) lines.push(...info.humanLines);
  return lines.join('\n');
}

/** qemu-img's snapshot table (also used by `snapshot -l`). */
export function snapshotTable(snaps: Array<Record<string, unknown>>): string {
  const pad = (s: string, n: number) => s.padEnd(n);
  const rows = [`${pad('ID', 10)}${pad('TAG', 18)}${'VM SIZE'.padStart(7)}${pad('', 16)}DATE     VM CLOCK     ICOUNT`];
  for (const s of snaps) {
    const date = new Date(Number(s['date-sec']) * 1000).toISOString().replace('T', ' ').slice(0, 19);
    const clk = Number(s['vm-clock-sec']);
    const clock = `${String(Math.floor(clk / 3600)).padStart(2, '0')}:${String(Math.floor(clk / 60) % 60).padStart(2, '0')}:${String(clk % 60).padStart(2, '0')}.${String(Math.floor(Number(s['vm-clock-nsec']) / 1e6)).padStart(3, '0')}`;
    rows.push(`${pad(String(s.id), 10)}${pad(String(s.name), 18)}${humanSize(Number(s['vm-state-size'])).padStart(7)} ${date} ${clock} ${String(s.icount ?? '--').padStart(10)}`);
  }
  return rows.join('\n');
}
