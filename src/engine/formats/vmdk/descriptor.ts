// The text descriptor ("# Disk DescriptorFile"): key = value lines, extent lines
// ("RW 2048 SPARSE "name.vmdk" [offset]") and the ddb.* disk database. Parsed strictly
// enough that garbage is reported with its line number, loosely enough for the
// descriptors VMware products actually write.

import { CorruptImage } from '../../errors.js';

/** Descriptors are a few hundred bytes; twoGbMaxExtent disks of many TiB need some KiB. */
export const MAX_DESCRIPTOR_BYTES = 1024 * 1024;
export const MAX_EXTENTS = 65536;

export type ExtentType = 'SPARSE' | 'FLAT' | 'ZERO' | 'VMFS' | 'VMFSSPARSE' | 'VMFSRDM' | 'VMFSRAW' | 'SESPARSE';
const EXTENT_TYPES = new Set<string>(['SPARSE', 'FLAT', 'ZERO', 'VMFS', 'VMFSSPARSE', 'VMFSRDM', 'VMFSRAW', 'SESPARSE']);

export interface DescriptorExtent {
  access: 'RW' | 'RDONLY' | 'NOACCESS';
  /** Size in sectors. */
  sectors: number;
  type: ExtentType;
  /** File name as written (empty for ZERO). */
  file: string;
  /** Start in the file, sectors (flat extents). */
  offset: number;
  line: number;
}

export interface Descriptor {
  version: number;
  cid: number;
  parentCid: number;
  createType: string;
  parentFileNameHint?: string;
  extents: DescriptorExtent[];
  /** Every key = value pair (ddb.* included), unquoted. */
  values: Map<string, string>;
}

const EXTENT_RE = /^(RW|RDONLY|NOACCESS)\s+(\d+)\s+([A-Za-z]+)(?:\s+"((?:[^"\\]|\\.)*)"(?:\s+(\d+))?)?\s*$/;
const KV_RE = /^([A-Za-z_][A-Za-z0-9_.:-]*)\s*=\s*(.*)$/; // the line is trimmed: no trailing-space backtracking

export function looksLikeDescriptor(head: Uint8Array): boolean {
  // "# Disk DescriptorFile" is what every writer puts first; tolerate a BOM/blank lines.
  const s = Buffer.from(head.subarray(0, Math.min(head.length, 2048))).toString('latin1');
  if (/^(\ufeff|\xef\xbb\xbf)?\s*# Disk DescriptorFile/.test(s)) return true;
  // Like qemu: plain text with a version= line and a createType near the top.
  if (s.includes('\0')) return false;
  return /^\s*version\s*=\s*[123]\s*$/m.test(s) && /^\s*createType\s*=/m.test(s);
}

export function parseDescriptor(bytes: Uint8Array, file: string): Descriptor {
  if (bytes.length > MAX_DESCRIPTOR_BYTES) {
    throw new CorruptImage(`VMDK descriptor is ${bytes.length} bytes, more than the ${MAX_DESCRIPTOR_BYTES} allowed`, { file });
  }
  // Embedded descriptors are NUL padded to their sector count.
  let end = bytes.indexOf(0);
  if (end < 0) end = bytes.length;
  const text = Buffer.from(bytes.subarray(0, end)).toString('utf8');
  const lines = text.split(/\r?\n/);
  const values = new Map<string, string>();
  const extents: DescriptorExtent[] = [];
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i]!;
    const line = raw.trim();
    const lineNo = i + 1;
    if (line === '' || line.startsWith('#')) continue;
    const m = EXTENT_RE.exec(line);
    if (m) {
      const type = m[3]!.toUpperCase();
      if (!EXTENT_TYPES.has(type)) throw new CorruptImage(`VMDK descriptor line ${lineNo}: unknown extent type '${m[3]}'`, { file });
      const sectors = Number(m[2]);
      const offset = m[5] !== undefined ? Number(m[5]) : 0;
      if (!Number.isSafeInteger(sectors) || !Number.isSafeInteger(offset)) {
        throw new CorruptImage(`VMDK descriptor line ${lineNo}: extent size or offset out of range`, { file });
      }
      if (type !== 'ZERO' && m[4] === undefined) {
        throw new CorruptImage(`VMDK descriptor line ${lineNo}: ${type} extent without a file name`, { file });
      }
      if (extents.length >= MAX_EXTENTS) throw new CorruptImage(`VMDK descriptor has more than ${MAX_EXTENTS} extents`, { file });
      extents.push({ access: m[1] as DescriptorExtent['access'], sectors, type: type as ExtentType, file: (m[4] ?? '').replace(/\\(.)/g, '$1'), offset, line: lineNo });
      continue;
    }
    const kv = KV_RE.exec(line);
    if (kv) {
      let v = kv[2]!;
      if (v.length >= 2 && v.startsWith('"') && v.endsWith('"')) v = v.slice(1, -1);
      else if (v.startsWith('"')) throw new CorruptImage(`VMDK descriptor line ${lineNo}: unterminated quoted value for '${kv[1]}'`, { file });
      values.set(kv[1]!, v);
      continue;
    }
    throw new CorruptImage(`VMDK descriptor line ${lineNo}: cannot parse '${line.length > 60 ? line.slice(0, 60) + '...' : line}'`, { file });
  }
  const hex = (key: string, dflt: number): number => {
    const v = values.get(key);
    if (v === undefined) return dflt;
    if (!/^[0-9a-fA-F]{1,8}$/.test(v)) throw new CorruptImage(`VMDK descriptor: ${key} '${v}' is not a 32-bit hex number`, { file });
    return parseInt(v, 16) >>> 0;
  };
  const version = Number(values.get('version') ?? '1');
  const createType = values.get('createType');
  if (createType === undefined) throw new CorruptImage('VMDK descriptor has no createType', { file });
  const parentCid = hex('parentCID', 0xffffffff);
  const hint = values.get('parentFileNameHint');
  return {
    version: Number.isFinite(version) ? version : 1,
    cid: hex('CID', 0xffffffff),
    parentCid,
    createType,
    parentFileNameHint: hint !== undefined && hint !== '' ? hint : undefined,
    extents,
    values,
  };
}

export interface DescriptorSpec {
  cid: number;
  parentCid?: number;
  parentFileNameHint?: string;
  createType: string;
  extents: Array<{ sectors: number; type: ExtentType; file: string; offset?: number }>;
  /** ddb.* entries in order, keys without the "ddb." prefix. */
  ddb: Array<[string, string]>;
}

export function serializeDescriptor(d: DescriptorSpec): string {
  const hex8 = (n: number) => (n >>> 0).toString(16).padStart(8, '0');
  const out = [
    '# Disk DescriptorFile',
    'version=1',
    `CID=${hex8(d.cid)}`,
    `parentCID=${hex8(d.parentCid ?? 0xffffffff)}`,
    `createType="${d.createType}"`,
  ];
  if (d.parentFileNameHint !== undefined) out.push(`parentFileNameHint="${d.parentFileNameHint}"`);
  out.push('', '# Extent description');
  for (const e of d.extents) {
    const name = e.file.replace(/(["\\])/g, '\\$1');
    out.push(e.type === 'ZERO' ? `RW ${e.sectors} ZERO` : `RW ${e.sectors} ${e.type} "${name}"${e.type === 'FLAT' ? ` ${e.offset ?? 0}` : ''}`);
  }
  out.push('', '# The Disk Data Base', '#DDB', '');
  for (const [k, v] of d.ddb) out.push(`ddb.${k} = "${v}"`);
  return out.join('\n') + '\n';
}
