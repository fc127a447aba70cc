// VMDK: the sparse extent header (KDMV), its embedded descriptor, streamOptimized
// footers, old COWD extents, and text descriptor files. A single uploaded file may only
// describe its own data: any extent naming another file is refused (CVE-2022-47951,
// CVE-2024-32498), as are create types outside the allow-list.
import type { FormatChecker, Report } from '../types.js';
import { type ImageView, HUGE, fit, ascii, bytesEq, has, printable, slice, u32le, u64le } from '../view.js';
import { dangerousName, isBareName } from '../refs.js';

const GD_AT_END = 2 ** 64 - 1; // 0xffffffffffffffff, as the double u64le returns for it
const FLAG_NL_DETECT = 1;
const FLAG_RGD = 2;
const MAX_DESC_BYTES = 1024 * 1024;
const SECTOR = 512;

export interface Descriptor {
  createType?: string;
  parentCID?: string;
  parentFileNameHint?: string;
  /** createType as qemu reads it: the first occurrence of the word anywhere, comments included. */
  qemuCreateType?: string;
  extents: Array<{ access: string; sectors: number; type: string; file?: string; line: string }>;
  bad: string[];
}

/**
 * qemu's way of reading a descriptor value: strstr() for the name anywhere in the text
 * (inside comments and other values too), skip two characters (`="`), read to the next
 * quote. undefined when the name does not occur.
 */
export function qemuValue(text: string, name: string): string | undefined {
  const i = text.indexOf(name);
  if (i < 0) return undefined;
  const start = i + name.length + 2;
  const end = text.indexOf('"', start);
  return text.slice(start, end < 0 ? Math.min(text.length, start + 512) : end);
}

export function parseDescriptor(text: string): Descriptor {
  const d: Descriptor = { extents: [], bad: [] };
  const nul = text.indexOf('\0');
  if (nul >= 0) text = text.slice(0, nul);
  d.qemuCreateType = qemuValue(text, 'createType');
  // qemu opens a parent whenever the word occurs, even in a comment: so do we judge.
  const hint = qemuValue(text, 'parentFileNameHint');
  const lines = text.split(/\r?\n/);
  for (let raw of lines.slice(0, 10000)) {
    raw = raw.trim();
    if (raw === '' || raw.startsWith('#')) continue;
    const ext = /^(RW|RDONLY|NOACCESS)\s+(\d+)\s+([A-Za-z]+)(?:\s+"([^"]*)"(?:\s+(\d+))?)?/.exec(raw);
    if (ext) {
      d.extents.push({ access: ext[1]!, sectors: Number(ext[2]), type: ext[3]!.toUpperCase(), file: ext[4], line: raw });
      continue;
    }
    // key = "value", split by hand: a regex with optional quotes around [^"]* backtracks
    // quadratically (or worse) on long lines of blanks and quotes.
    const eq = raw.indexOf('=');
    const k = eq > 0 ? raw.slice(0, eq).trim() : '';
    if (k && /^[A-Za-z0-9_.]+$/.test(k)) {
      let val = raw.slice(eq + 1).trim();
      if (val.startsWith('"')) val = val.slice(1);
      const q = val.indexOf('"');
      if (q >= 0) val = val.slice(0, q);
      if (k === 'createType') d.createType = val;
      else if (k === 'parentCID') d.parentCID = val.toLowerCase();
      else if (k === 'parentFileNameHint') d.parentFileNameHint = val;
      continue;
    }
    // qemu treats anything else as an extent line it cannot parse (an error), so a
    // line that looks like an access mode with a bad shape is worth naming.
    if (/^(RW|RDONLY|NOACCESS)\b/.test(raw)) d.bad.push(raw);
  }
  if (d.parentFileNameHint === undefined && hint !== undefined) d.parentFileNameHint = hint;
  return d;
}

/** Shared descriptor rules; `embedded` is true for the descriptor inside a sparse file. */
function checkDescriptor(r: Report, d: Descriptor, embedded: boolean, offset: number): void {
  r.subformat = d.qemuCreateType ?? d.createType;
  if (d.createType === undefined) r.unsafe('vmdk-create-type', 'the descriptor has no createType', offset);
  // Both readings must be allowed: the line-by-line one and qemu's first-occurrence one.
  for (const t of new Set([d.createType, d.qemuCreateType])) {
    if (t !== undefined && !r.opts.allowedVmdkCreateTypes.includes(t)) {
      r.unsafe('vmdk-create-type', `createType '${printable(t, 64)}' is not allowed (allowed: ${r.opts.allowedVmdkCreateTypes.join(', ')})`, offset);
    }
  }
  for (const bad of d.bad) r.unsafe('vmdk-extent', `unparseable extent line '${printable(bad, 200)}'`, offset);
  const refs = d.extents.filter((e) => e.type !== 'ZERO');
  if (embedded) {
    // The sparse file's own extent: exactly one SPARSE line naming a bare file (itself).
    if (refs.length > 1) r.unsafe('vmdk-extent', `the embedded descriptor lists ${refs.length} extents; a single-file VMDK has one`, offset);
    for (const e of refs) {
      if (e.type !== 'SPARSE') r.unsafe('vmdk-extent', `extent '${printable(e.line, 200)}' is of type ${e.type}, not the file's own SPARSE data`, offset);
      else if (e.file === undefined || !isBareName(e.file)) {
        r.unsafe('vmdk-extent', `extent file name '${printable(e.file ?? '', 200)}' ${e.file ? `is ${dangerousName(e.file) ?? 'not a bare file name'}` : 'is missing'}`, offset);
      }
    }
  } else {
    for (const e of refs) {
      r.unsafe('vmdk-extent', `descriptor references ${e.type} extent '${printable(e.file ?? '', 200)}'${e.file && dangerousName(e.file) ? ` (${dangerousName(e.file)})` : ''}; only single-file VMDKs are accepted`, offset);
    }
  }
  if (d.parentFileNameHint !== undefined || (d.parentCID !== undefined && d.parentCID !== 'ffffffff')) {
    const name = d.parentFileNameHint ?? '';
    r.backingFile = printable(name);
    if (!r.opts.allowBackingFile) r.unsafe('backing-file', `the VMDK has a parent${name ? ` '${printable(name)}'` : ''} (parentCID ${d.parentCID ?? '?'})`, offset);
    else if (dangerousName(name)) r.unsafe('backing-file', `parent '${printable(name)}' is ${dangerousName(name)}`, offset);
  }
}

interface SparseHeader {
  version: number; flags: number; capacity: number; grainSize: number; descOffset: number; descSize: number;
  gtes: number; rgdOffset: number; gdOffset: number; compress: number; nl: boolean;
}
function parseSparse(b: Uint8Array, off: number): SparseHeader | null {
  if (!has(b, off, 80) || !bytesEq(b, off, 'KDMV')) return null;
  return {
    version: u32le(b, off + 4), flags: u32le(b, off + 8), capacity: u64le(b, off + 12), grainSize: u64le(b, off + 20),
    descOffset: u64le(b, off + 28), descSize: u64le(b, off + 36), gtes: u32le(b, off + 44), rgdOffset: u64le(b, off + 48),
    gdOffset: u64le(b, off + 56), compress: b[off + 77]! | (b[off + 78]! << 8),
    nl: b[off + 73] === 0x0a && b[off + 74] === 0x20 && b[off + 75] === 0x0d && b[off + 76] === 0x0a,
  };
}

/** A streamOptimized footer: marker (type 3), a KDMV header copy, an end-of-stream marker. */
export function streamFooter(v: ImageView): SparseHeader | null {
  if (v.size < 1536 + 512) return null;
  const m = slice(v, v.size - 1536, 1536);
  if (!m) return null;
  if (u32le(m, 12) !== 3) return null; // footer marker type
  return parseSparse(m, 512);
}

export function isTextDescriptor(b: Uint8Array): boolean {
  if (bytesEq(b, 0, '# Disk DescriptorFile')) return true;
  // qemu's probe: comment and blank lines, then "version=N".
  let p = 0;
  const end = Math.min(b.length, 64 * 1024);
  while (p < end) {
    if (b[p] === 0x23) { while (p < end && b[p] !== 0x0a) p++; p++; continue; }
    if (b[p] === 0x20 || b[p] === 0x0d || b[p] === 0x0a) {
      while (p < end && b[p] === 0x20) p++;
      if (p < end && b[p] === 0x0d) p++;
      if (p >= end || b[p] !== 0x0a) return false;
      p++;
      continue;
    }
    return /^version=[123]\r?\n/.test(ascii(b, p, 11));
  }
  return false;
}

export const vmdk: FormatChecker = {
  name: 'vmdk',
  match(v) { return bytesEq(v.head, 0, 'KDMV') || bytesEq(v.head, 0, 'COWD') || isTextDescriptor(v.head); },
  need(head) {
    const h = parseSparse(head, 0);
    if (!h) return isTextDescriptor(head) ? MAX_DESC_BYTES : 512;
    if (h.descOffset >= HUGE / SECTOR || h.descSize > MAX_DESC_BYTES / SECTOR) return 512;
    return Math.max(512, fit((h.descOffset + h.descSize) * SECTOR));
  },
  inspect(v, r) {
    r.format = 'vmdk';
    if (bytesEq(v.head, 0, 'KDMV')) inspectSparse(v, r);
    else if (bytesEq(v.head, 0, 'COWD')) inspectCowd(v, r);
    else inspectText(v, r);
  },
};

function inspectSparse(v: ImageView, r: Report): void {
  const h = parseSparse(v.head, 0);
  if (!h || v.size < 512) { r.unsafe('header-cut-short', `VMDK sparse magic, but the file (${v.size} bytes) is shorter than its 512-byte header`); return; }
  if (h.version < 1 || h.version > 3) { r.unsafe('invalid-header', `VMDK version ${h.version} unknown`, 4); return; }
  if ((h.flags & FLAG_NL_DETECT) && !h.nl) r.unsafe('invalid-header', 'newline-detection bytes are damaged (transferred in text mode?)', 73);
  if (h.grainSize === 0 || h.grainSize > 0x200000) { r.unsafe('invalid-header', `grain size ${h.grainSize} sectors is invalid`, 20); return; }
  if (h.gtes === 0 || h.gtes > 512) { r.unsafe('invalid-header', `${h.gtes} grain table entries per table (qemu allows 1..512)`, 44); return; }
  if (h.compress > 1) r.unsafe('invalid-header', `compression algorithm ${h.compress} unknown`, 77);
  r.clusterSize = h.grainSize * SECTOR;
  r.setVirtualSize(h.capacity * SECTOR);

  // Embedded descriptor.
  let desc: Descriptor | null = null;
  if (h.descOffset !== 0 || h.descSize !== 0) {
    if (h.descSize * SECTOR > MAX_DESC_BYTES) r.unsafe('invalid-header', `embedded descriptor of ${h.descSize} sectors is larger than 1 MiB`, 36);
    else if (r.within(v, 'embedded descriptor', h.descOffset * SECTOR, h.descSize * SECTOR)) {
      const t = slice(v, h.descOffset * SECTOR, h.descSize * SECTOR);
      if (t) {
        desc = parseDescriptor(ascii(t, 0, t.length));
        checkDescriptor(r, desc, true, h.descOffset * SECTOR);
      }
    }
  }
  if (!desc) r.unsafe('vmdk-create-type', 'sparse VMDK without an embedded descriptor', 28);
  // qemu looks for the parent name at offset 512 (10 KiB), whatever desc_offset says.
  const fixedArea = slice(v, 512, Math.min(10240, v.size - 512));
  if (fixedArea && (h.descOffset !== 1 || !desc?.parentFileNameHint)) {
    const hint = qemuValue(ascii(fixedArea, 0, fixedArea.length).split('\0')[0]!, 'parentFileNameHint');
    if (hint !== undefined) {
      r.backingFile = printable(hint);
      if (!r.opts.allowBackingFile || dangerousName(hint)) r.unsafe('backing-file', `the VMDK names a parent '${printable(hint)}' at offset 512, where qemu looks for it`, 512);
    }
  }
  if (h.capacity === 0 && desc) {
    // qemu then opens the embedded descriptor as if it were a descriptor file, extents and all.
    r.unsafe('vmdk-extent', 'zero-capacity sparse header: qemu would follow the embedded descriptor\'s extents instead', 12);
  }

  // Grain directory: in the header, or (streamOptimized) in the footer.
  let hh = h;
  if (h.gdOffset === GD_AT_END) {
    const f = streamFooter(v);
    if (!f) { r.unsafe('truncated', 'the header says the grain directory is in a footer, and there is no valid footer at the end', 56); return; }
    if (f.gdOffset === GD_AT_END) { r.unsafe('invalid-header', 'the footer also says the grain directory is at the end', v.size - 1024 + 56); return; }
    if (f.capacity !== h.capacity || f.grainSize !== h.grainSize || f.gtes !== h.gtes || f.descOffset !== h.descOffset || f.descSize !== h.descSize) {
      r.unsafe('invalid-header', 'the footer header disagrees with the first header (capacity, grain or descriptor)', v.size - 1024);
    }
    hh = f;
  }
  if (h.capacity >= HUGE / SECTOR) return;
  const gtCoverage = h.grainSize * h.gtes; // sectors per grain table
  const gdEntries = Math.ceil(h.capacity / gtCoverage);
  if (gdEntries > 0) {
    // qemu reads the primary directory at gd_offset; the redundant one (RGD flag) must fit too.
    const dirs: Array<[string, number]> = [['grain directory', hh.gdOffset]];
    if (h.flags & FLAG_RGD) dirs.push(['redundant grain directory', hh.rgdOffset]);
    for (const [what, off] of dirs) {
      if (off === 0) r.unsafe('invalid-header', `${what} offset is 0`, 56);
      else r.within(v, what, off >= HUGE / SECTOR ? HUGE : off * SECTOR, gdEntries * 4);
    }
  }
}

function inspectCowd(v: ImageView, r: Report): void {
  r.subformat = 'COWD';
  if (v.size < 2048 || !has(v.head, 0, 512)) { r.unsafe('header-cut-short', 'COWD header cut short'); return; }
  const b = v.head;
  const sectors = u32le(b, 12);
  const granularity = u32le(b, 16);
  const l1Off = u32le(b, 20);
  const l1Size = u32le(b, 24);
  r.clusterSize = granularity * SECTOR;
  r.setVirtualSize(sectors * SECTOR);
  if (!r.opts.allowedVmdkCreateTypes.includes('COWD')) {
    r.unsafe('vmdk-create-type', 'old COWD (VMware ESX 2) sparse extent is not an allowed create type');
  }
  r.within(v, 'COWD L1 directory', l1Off * SECTOR, l1Size * 4);
}

function inspectText(v: ImageView, r: Report): void {
  const len = Math.min(v.head.length, MAX_DESC_BYTES);
  const d = parseDescriptor(ascii(v.head, 0, len));
  r.setVirtualSize(d.extents.reduce((s, e) => s + e.sectors * SECTOR, 0));
  checkDescriptor(r, d, false, 0);
  if (d.extents.length === 0) r.info('no-extents', 'the descriptor file lists no extents');
  r.virtualSize = r.virtualSize ?? 0;
}
