// Create options (qemu-img's -o names for qcow2) and measure().

import type { CreateOptionSpec } from '../../block/device.js';
import { InvalidArgument, UnsupportedFeature } from '../../errors.js';
import { COMPRESSION_ZLIB, COMPRESSION_ZSTD, MAX_L1_BYTES } from './constants.js';

export const createOptions: CreateOptionSpec[] = [
  { name: 'compat', type: 'enum', values: ['0.10', '1.1', 'v2', 'v3'], default: '1.1', help: 'qcow2 version: 0.10 (v2) or 1.1 (v3)' },
  { name: 'cluster_size', type: 'size', default: '65536', help: 'cluster size, a power of two from 512 to 2M' },
  { name: 'compression_type', type: 'enum', values: ['zlib', 'zstd'], default: 'zlib', help: 'compression for compressed clusters (zstd needs compat=1.1)' },
  { name: 'preallocation', type: 'enum', values: ['off', 'metadata'], default: 'off', help: 'allocate all metadata and map every cluster up front' },
  { name: 'lazy_refcounts', type: 'bool', default: 'off', help: 'mark the image for lazy refcount updates (compat=1.1)' },
  { name: 'refcount_bits', type: 'number', values: ['1', '2', '4', '8', '16', '32', '64'], default: '16', help: 'width of a refcount entry (compat=0.10 needs 16)' },
  { name: 'extended_l2', type: 'bool', default: 'off', help: 'subcluster allocation (compat=1.1, cluster_size >= 16k)' },
  { name: 'backing_file', type: 'string', help: 'backing file name recorded in the image' },
  { name: 'backing_fmt', type: 'string', help: 'format of the backing file' },
];

export interface Qcow2CreateOptions {
  version: 2 | 3;
  clusterBits: number;
  compressionType: number;
  preallocMetadata: boolean;
  lazyRefcounts: boolean;
  refcountOrder: number;
  extendedL2: boolean;
  backingFile?: string;
  backingFormat?: string;
}

/** Parses "64k", "2M", "512" (binary suffixes, like qemu). */
export function parseSize(v: string, what: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([kmgtpe]?)i?b?$/i.exec(v.trim());
  if (!m) throw new InvalidArgument(`invalid ${what} '${v}'`);
  const mult = 1024 ** ' kmgtpe'.indexOf((m[2] || ' ').toLowerCase());
  const n = Number(m[1]) * mult;
  if (!Number.isSafeInteger(n)) throw new InvalidArgument(`invalid ${what} '${v}'`);
  return n;
}

function parseBool(v: string, what: string): boolean {
  const s = v.toLowerCase();
  if (['on', 'true', 'yes', '1'].includes(s)) return true;
  if (['off', 'false', 'no', '0'].includes(s)) return false;
  throw new InvalidArgument(`invalid value '${v}' for ${what} (on/off)`);
}

export function parseCreateOptions(opts: Record<string, string>, extra: { backingFile?: string; backingFormat?: string } = {}): Qcow2CreateOptions {
  const known = new Set(createOptions.map((o) => o.name));
  for (const k of Object.keys(opts)) {
    if (k === 'encryption' || k === 'encrypt.format') throw new UnsupportedFeature('creating encrypted qcow2 images is not supported');
    if (!known.has(k)) throw new InvalidArgument(`qcow2 does not support option '${k}' (known: ${[...known].join(', ')})`);
  }
  const compat = opts.compat ?? '1.1';
  let version: 2 | 3;
  if (compat === '0.10' || compat === 'v2') version = 2;
  else if (compat === '1.1' || compat === 'v3') version = 3;
  else throw new InvalidArgument(`invalid compat '${compat}' (0.10 or 1.1)`);
  const cs = parseSize(opts.cluster_size ?? '65536', 'cluster_size');
  const clusterBits = Math.log2(cs);
  if (!Number.isInteger(clusterBits) || clusterBits < 9 || clusterBits > 21) throw new InvalidArgument(`cluster_size must be a power of two between 512 and 2M, not ${opts.cluster_size}`);
  const ctName = opts.compression_type ?? 'zlib';
  if (ctName !== 'zlib' && ctName !== 'zstd') throw new InvalidArgument(`invalid compression_type '${ctName}' (zlib or zstd)`);
  const compressionType = ctName === 'zstd' ? COMPRESSION_ZSTD : COMPRESSION_ZLIB;
  if (compressionType !== COMPRESSION_ZLIB && version === 2) throw new InvalidArgument('compression_type=zstd needs compat=1.1');
  const prealloc = opts.preallocation ?? 'off';
  if (prealloc !== 'off' && prealloc !== 'metadata') throw new UnsupportedFeature(`preallocation=${prealloc} is not supported (off or metadata)`);
  const lazyRefcounts = parseBool(opts.lazy_refcounts ?? 'off', 'lazy_refcounts');
  if (lazyRefcounts && version === 2) throw new InvalidArgument('lazy_refcounts needs compat=1.1');
  const rb = Number(opts.refcount_bits ?? '16');
  const refcountOrder = Math.log2(rb);
  if (!Number.isInteger(refcountOrder) || refcountOrder < 0 || refcountOrder > 6) throw new InvalidArgument(`refcount_bits must be a power of two from 1 to 64, not ${opts.refcount_bits}`);
  if (version === 2 && rb !== 16) throw new InvalidArgument('compat=0.10 requires refcount_bits=16');
  const extendedL2 = parseBool(opts.extended_l2 ?? 'off', 'extended_l2');
  if (extendedL2 && version === 2) throw new InvalidArgument('extended_l2 needs compat=1.1');
  if (extendedL2 && clusterBits < 14) throw new InvalidArgument('extended_l2 needs cluster_size of at least 16k');
  const backingFile = opts.backing_file ?? extra.backingFile;
  const backingFormat = opts.backing_fmt ?? extra.backingFormat;
  if (backingFormat !== undefined && backingFile === undefined) throw new InvalidArgument('backing_fmt given without backing_file');
  return { version, clusterBits, compressionType, preallocMetadata: prealloc === 'metadata', lazyRefcounts, refcountOrder, extendedL2, backingFile, backingFormat };
}

/** Largest virtual size the L1 cap allows for these options. */
export function maxVirtualSize(clusterBits: number, extendedL2: boolean): number {
  const cs = 2 ** clusterBits;
  return Math.min(Number.MAX_SAFE_INTEGER, (MAX_L1_BYTES / 8) * (cs / (extendedL2 ? 16 : 8)) * cs);
}

/** Clusters of refcount blocks + table needed to cover `clusters` clusters plus themselves. */
export function refcountMetadataClusters(clusters: number, clusterSize: number, refcountOrder: number): { blocks: number; table: number } {
  const perBlock = clusterSize * 8 / (1 << refcountOrder);
  const perTable = clusterSize / 8;
  let blocks = 0, table = 0, last = -1, n = 0;
  while (n !== last) {
    last = n;
    blocks = Math.ceil((clusters + table + blocks) / perBlock);
    table = Math.ceil(blocks / perTable);
    n = clusters + blocks + table;
  }
  return { blocks, table };
}

/** File size of a fully allocated image (qemu's preallocation size formula). */
export function fullyAllocatedSize(virtualSize: number, clusterBits: number, refcountOrder: number, extendedL2: boolean): { total: number; alignedSize: number } {
  const cs = 2 ** clusterBits;
  const entry = extendedL2 ? 16 : 8;
  const aligned = Math.ceil(virtualSize / cs) * cs;
  let meta = cs; // header
  const nl2e = Math.ceil(aligned / cs / (cs / entry)) * (cs / entry);
  meta += nl2e * entry;
  const nl1e = Math.ceil(nl2e * entry / cs / (cs / 8)) * (cs / 8);
  meta += nl1e * 8;
  const r = refcountMetadataClusters((meta + aligned) / cs, cs, refcountOrder);
  meta += (r.blocks + r.table) * cs;
  return { total: meta + aligned, alignedSize: aligned };
}

export function measure(virtualSize: number, allocatedBytes: number, options: Record<string, string>): { required: number; fullyAllocated: number } {
  const o = parseCreateOptions(options);
  if (virtualSize > maxVirtualSize(o.clusterBits, o.extendedL2)) throw new InvalidArgument(`virtual size ${virtualSize} is too large for cluster_size ${2 ** o.clusterBits}`);
  const { total, alignedSize } = fullyAllocatedSize(virtualSize, o.clusterBits, o.refcountOrder, o.extendedL2);
  // Like qemu: the fully allocated metadata, plus only the data that is allocated.
  // qemu counts whole target clusters; callers should round each data run out to clusters.
  const cs = 2 ** o.clusterBits;
  const data = Math.min(alignedSize, Math.ceil(allocatedBytes / cs) * cs);
  return { required: total - alignedSize + data, fullyAllocated: total };
}
