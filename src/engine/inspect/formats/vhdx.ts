// VHDX: file identifier, the two headers, the region tables, the metadata items
// (block size, virtual size, sector size, parent locator) and the BAT bounds.
import { crc32c } from '@node-rs/crc32';
import type { FormatChecker, Report } from '../types.js';
import { type ImageView, HUGE, fit, bytesEq, has, printable, slice, u16le, u32le, u64le, utf16, floorTo } from '../view.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const HEADER1 = 64 * KiB;
const HEADER2 = 128 * KiB;
const REGION1 = 192 * KiB;
const REGION2 = 256 * KiB;

/** GUIDs in their on-disk (mixed-endian) byte order, as hex. */
function guidHex(b: Uint8Array, off: number): string {
  let s = '';
  for (let i = 0; i < 16; i++) s += b[off + i]!.toString(16).padStart(2, '0');
  return s;
}
function guid(text: string): string {
  const h = text.replace(/-/g, '').toLowerCase();
  const sw = (x: string) => x.match(/../g)!.reverse().join('');
  return sw(h.slice(0, 8)) + sw(h.slice(8, 12)) + sw(h.slice(12, 16)) + h.slice(16);
}
const BAT_GUID = guid('2DC27766-F623-4200-9D64-115E9BFD4A08');
const META_GUID = guid('8B7CA206-4790-4B9A-B8FE-575F050F886E');
const FILE_PARAMS = guid('CAA16737-FA36-4D43-B3B6-33F0AA44E76B');
const DISK_SIZE = guid('2FA54224-CD1B-4876-B211-5DBED83BF4B8');
const PAGE83 = guid('BECA12AB-B2E6-4523-93EF-C309E000C746');
const LOGICAL_SECTOR = guid('8141BF1D-A96F-4709-BA47-F233A8FAAB5F');
const PHYSICAL_SECTOR = guid('CDA348C7-445D-4471-9CC9-E9885251C556');
const PARENT_LOCATOR = guid('A8D35F2D-B30B-454D-ABF7-D3D84834AB0C');
const KNOWN_ITEMS = new Set([FILE_PARAMS, DISK_SIZE, PAGE83, LOGICAL_SECTOR, PHYSICAL_SECTOR, PARENT_LOCATOR]);

function crcOk(b: Uint8Array, off: number, len: number): boolean {
  const copy = Buffer.from(b.subarray(off, off + len));
  const stored = u32le(copy, 4);
  copy.fill(0, 4, 8);
  return (crc32c(copy) >>> 0) === stored;
}

interface Region { guid: string; offset: number; length: number; required: boolean }

function regionTable(b: Uint8Array): { regions: Region[]; ok: boolean } | null {
  for (const off of [REGION1, REGION2]) {
    if (!has(b, off, 64 * KiB) || !bytesEq(b, off, 'regi') || !crcOk(b, off, 64 * KiB)) continue;
    const count = u32le(b, off + 8);
    if (count > 2047) continue;
    const regions: Region[] = [];
    for (let i = 0; i < count; i++) {
      const e = off + 16 + i * 32;
      regions.push({ guid: guidHex(b, e), offset: u64le(b, e + 16), length: u32le(b, e + 24), required: (u32le(b, e + 28) & 1) !== 0 });
    }
    return { regions, ok: true };
  }
  return null;
}

export const vhdx: FormatChecker = {
  name: 'vhdx',
  match(v) { return bytesEq(v.head, 0, 'vhdxfile'); },
  need(head) {
    if (head.length < REGION2 + 64 * KiB) return REGION2 + 64 * KiB;
    const rt = regionTable(head);
    if (!rt) return 0;
    let need = 0;
    for (const r of rt.regions) if (r.guid === META_GUID || r.guid === BAT_GUID) need = Math.max(need, fit(r.offset + r.length));
    return need;
  },
  inspect(v, r) { inspectVhdx(v, r); },
};

function inspectVhdx(v: ImageView, r: Report): void {
  r.format = 'vhdx';
  const b = v.head;
  if (v.size < 1 * MiB) { r.unsafe('header-cut-short', `VHDX identifier, but the file (${v.size} bytes) is shorter than the 1 MiB header section`); return; }
  // Headers: at least one valid; the higher sequence number wins.
  let best: { off: number; seq: number } | null = null;
  for (const off of [HEADER1, HEADER2]) {
    if (!has(b, off, 4 * KiB) || !bytesEq(b, off, 'head') || !crcOk(b, off, 4 * KiB)) continue;
    const seq = u64le(b, off + 8);
    if (!best || seq > best.seq) best = { off, seq };
  }
  if (!best) { r.unsafe('bad-magic', 'neither VHDX header has a valid signature and checksum', HEADER1); return; }
  const h = best.off;
  if (u16le(b, h + 66) !== 1) r.unsafe('invalid-header', `VHDX version ${u16le(b, h + 66)} unknown`, h + 66);
  const logGuidZero = b.subarray(h + 48, h + 64).every((x) => x === 0);
  const logLen = u32le(b, h + 68);
  const logOff = u64le(b, h + 72);
  if (!logGuidZero) r.info('log-replay', 'the VHDX log must be replayed before use', h + 48);
  if (logLen > 0) r.within(v, 'log', logOff, logLen);

  const rt = regionTable(b);
  if (!rt) { r.unsafe('bad-magic', 'neither VHDX region table has a valid signature and checksum', REGION1); return; }
  let bat: Region | undefined;
  let meta: Region | undefined;
  for (const reg of rt.regions) {
    if (reg.guid === BAT_GUID) bat = reg;
    else if (reg.guid === META_GUID) meta = reg;
    else if (reg.required) r.unsafe('unknown-incompatible-features', `required region ${reg.guid} is unknown`, REGION1);
    r.within(v, `region ${reg.guid === BAT_GUID ? 'BAT' : reg.guid === META_GUID ? 'metadata' : reg.guid}`, reg.offset, reg.length);
    if (reg.offset % MiB !== 0 || reg.offset < 1 * MiB) r.unsafe('invalid-header', `region at ${reg.offset} is not 1 MiB aligned after the header section`, REGION1);
  }
  if (!bat || !meta) { r.unsafe('invalid-header', 'the region table lacks the BAT or the metadata region'); return; }
  const m = slice(v, meta.offset, Math.min(meta.length, 64 * KiB));
  if (!m || meta.length < 64 * KiB) { if (meta.offset + meta.length <= v.size) r.unsafe('invalid-header', 'metadata region is too small or too far into the file to inspect'); return; }
  if (!bytesEq(m, 0, 'metadata')) { r.unsafe('bad-magic', 'metadata table lacks its signature', meta.offset); return; }
  const count = u16le(m, 10);
  if (count > 2047) { r.unsafe('invalid-header', `${count} metadata entries (max 2047)`, meta.offset + 10); return; }
  let blockSize = 0;
  let hasParent = false;
  let diskSize: number | null = null;
  let logical = 512;
  let locator: { off: number; len: number } | null = null;
  for (let i = 0; i < count; i++) {
    const e = 32 + i * 32;
    const id = guidHex(m, e);
    const off = u32le(m, e + 16);
    const len = u32le(m, e + 20);
    const flags = u32le(m, e + 24);
    const isUser = (flags & 1) !== 0;
    const isRequired = (flags & 4) !== 0;
    if (len > 0 && (off < 64 * KiB || off + len > meta.length)) { r.unsafe('table-outside-file', `metadata item ${id} lies outside the metadata region`, meta.offset + e); continue; }
    const item = slice(v, meta.offset + off, len);
    if (!KNOWN_ITEMS.has(id)) {
      if (isRequired && !isUser) r.unsafe('unknown-incompatible-features', `required metadata item ${id} is unknown`, meta.offset + e);
      continue;
    }
    if (!item) { r.unsafe('invalid-header', `metadata item ${id} is not readable in the inspected head`); continue; }
    if (id === FILE_PARAMS && len >= 8) { blockSize = u32le(item, 0); hasParent = (u32le(item, 4) & 2) !== 0; }
    else if (id === DISK_SIZE && len >= 8) diskSize = u64le(item, 0);
    else if (id === LOGICAL_SECTOR && len >= 4) logical = u32le(item, 0);
    else if (id === PARENT_LOCATOR) locator = { off: meta.offset + off, len };
  }
  if (blockSize < 1 * MiB || blockSize > 256 * MiB || (blockSize & (blockSize - 1)) !== 0) {
    r.unsafe('invalid-header', `block size ${blockSize} is not a power of two between 1 MiB and 256 MiB`); return;
  }
  if (logical !== 512 && logical !== 4096) { r.unsafe('invalid-header', `logical sector size ${logical}`); return; }
  if (diskSize === null) { r.unsafe('invalid-header', 'no virtual disk size metadata item'); return; }
  r.clusterSize = blockSize;
  r.setVirtualSize(floorTo(diskSize, logical));
  r.subformat = hasParent ? 'differencing' : 'dynamic';
  if (hasParent || locator) {
    let parent = '';
    if (locator) {
      const l = slice(v, locator.off, locator.len);
      if (l && locator.len >= 20) {
        const n = u16le(l, 18);
        for (let i = 0; i < n && 20 + i * 12 + 12 <= l.length; i++) {
          const e = 20 + i * 12;
          const ko = u32le(l, e); const vo = u32le(l, e + 4); const kl = u16le(l, e + 8); const vl = u16le(l, e + 10);
          if (ko + kl > l.length || vo + vl > l.length) continue;
          const key = utf16(l, ko, kl, true);
          const val = utf16(l, vo, vl, true);
          if (key === 'relative_path' || (!parent && /path$/.test(key))) parent = val;
        }
      }
    }
    r.backingFile = printable(parent);
    if (!r.opts.allowBackingFile || !hasParent) r.unsafe('differencing', `a differencing VHDX${parent ? ` (parent '${printable(parent)}')` : ''}${locator ? ' with a parent locator' : ''}; its parent would be opened`);
  }
  if (diskSize >= HUGE) return;
  // BAT size: payload blocks plus interleaved sector-bitmap entries.
  const chunkRatio = (2 ** 23 * logical) / blockSize;
  const dataBlocks = Math.ceil(diskSize / blockSize);
  const entries = hasParent
    ? Math.ceil(dataBlocks / chunkRatio) * (chunkRatio + 1)
    : dataBlocks + Math.floor(Math.max(0, dataBlocks - 1) / chunkRatio);
  if (bat.length < entries * 8) r.unsafe('size-mismatch', `BAT region of ${bat.length} bytes cannot hold the ${entries} entries the virtual size needs`, bat.offset);
  const t = slice(v, bat.offset, Math.min(bat.length, entries * 8));
  if (t) {
    for (let i = 0; i + 8 <= t.length; i += 8) {
      const state = t[i]! & 7;
      if (state !== 6 && state !== 7) continue; // fully / partially present
      const off = Math.floor(u64le(t, i) / MiB) * MiB;
      if (!r.within(v, `payload block ${i / 8}`, off, blockSize)) break;
    }
  }
}
