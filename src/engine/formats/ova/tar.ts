// Reading a tar archive in place: headers are parsed from the ByteSource and each member
// becomes a slice of it (no copy, no unpacking). ustar, pax ('x' path/size records) and
// GNU long names are understood; anything that does not add up is CorruptImage.

import type { ByteSource } from '../../io/source.js';
import { CorruptImage } from '../../errors.js';

export interface TarMember {
  name: string;
  /** Offset of the member's data in the archive. */
  offset: number;
  size: number;
  /** '0' regular file, '5' directory, ... */
  type: string;
}

const BLOCK = 512;
/** OVAs hold a handful of files; thousands means something is wrong. */
const MAX_MEMBERS = 10000;
const MAX_META = 1024 * 1024;

function field(b: Uint8Array, off: number, len: number): string {
  let end = off;
  while (end < off + len && b[end] !== 0) end++;
  return Buffer.from(b.subarray(off, end)).toString('utf8');
}

function octal(b: Uint8Array, off: number, len: number, file: string, what: string): number {
  if (b[off]! & 0x80) {
    // GNU base-256 for sizes above 8 GiB.
    let v = 0;
    for (let i = off + 1; i < off + len; i++) v = v * 256 + b[i]!;
    if (b[off] !== 0x80 || !Number.isSafeInteger(v)) throw new CorruptImage(`tar header ${what} out of range`, { file });
    return v;
  }
  const s = field(b, off, len).trim();
  if (s === '') return 0;
  if (!/^[0-7]+$/.test(s)) throw new CorruptImage(`tar header ${what} '${s}' is not octal`, { file });
  return parseInt(s, 8);
}

export function isTarHeader(b: Uint8Array): boolean {
  if (b.length < BLOCK) return false;
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : b[i]!;
  const s = field(b, 148, 8).trim();
  return /^[0-7]+$/.test(s) && parseInt(s, 8) === sum && b[0] !== 0;
}

export function firstMemberName(head: Uint8Array): string | null {
  return isTarHeader(head) ? field(head, 345, 155) ? `${field(head, 345, 155)}/${field(head, 0, 100)}` : field(head, 0, 100) : null;
}

export async function listTar(src: ByteSource): Promise<TarMember[]> {
  const file = src.name;
  const members: TarMember[] = [];
  const hdr = new Uint8Array(BLOCK);
  let pos = 0;
  let longName: string | undefined;
  let pax: Map<string, string> | undefined;
  while (pos + BLOCK <= src.size) {
    await src.read(hdr, pos);
    if (hdr.every((x) => x === 0)) break; // end-of-archive marker
    if (!isTarHeader(hdr)) throw new CorruptImage(`tar header at offset ${pos} has a bad checksum`, { file, offset: pos });
    let size = octal(hdr, 124, 12, file, 'size');
    const type = String.fromCharCode(hdr[156]! || 0x30);
    const dataAt = pos + BLOCK;
    if (pax?.has('size')) size = Number(pax.get('size'));
    if (!Number.isSafeInteger(size) || size < 0 || dataAt + size > src.size) {
      throw new CorruptImage(`tar member at offset ${pos} claims ${size} bytes, past the end of the archive`, { file, offset: pos });
    }
    if (type === 'L' || type === 'x' || type === 'g') {
      if (size > MAX_META) throw new CorruptImage(`tar metadata record of ${size} bytes is too large`, { file, offset: pos });
      const body = new Uint8Array(size);
      await src.read(body, dataAt);
      if (type === 'L') longName = field(body, 0, size);
      else if (type === 'x') pax = parsePax(body, file, pos);
    } else {
      const prefix = field(hdr, 345, 155);
      const base = field(hdr, 0, 100);
      const name = pax?.get('path') ?? longName ?? (prefix && field(hdr, 257, 5) === 'ustar' ? `${prefix}/${base}` : base);
      members.push({ name, offset: dataAt, size, type });
      if (members.length > MAX_MEMBERS) throw new CorruptImage(`tar archive has more than ${MAX_MEMBERS} members`, { file });
      longName = undefined;
      pax = undefined;
    }
    pos = dataAt + Math.ceil(size / BLOCK) * BLOCK;
  }
  return members;
}

function parsePax(body: Uint8Array, file: string, at: number): Map<string, string> {
  const m = new Map<string, string>();
  const text = Buffer.from(body).toString('utf8');
  let i = 0;
  while (i < text.length) {
    const sp = text.indexOf(' ', i);
    const len = Number(text.slice(i, sp));
    if (sp < 0 || !Number.isInteger(len) || len <= 0 || i + len > text.length) throw new CorruptImage('malformed pax header record', { file, offset: at });
    const rec = text.slice(sp + 1, i + len - 1);
    const eq = rec.indexOf('=');
    if (eq > 0) m.set(rec.slice(0, eq), rec.slice(eq + 1));
    i += len;
  }
  return m;
}

/** A window of another source; closing it leaves the parent open. */
export class SliceSource implements ByteSource {
  constructor(readonly name: string, private parent: ByteSource, private start: number, readonly size: number) {}
  async read(buf: Uint8Array, offset: number): Promise<number> {
    const n = Math.max(0, Math.min(buf.length, this.size - offset));
    if (n === 0) return 0;
    return this.parent.read(n === buf.length ? buf : buf.subarray(0, n), this.start + offset);
  }
  async close(): Promise<void> {}
}

/** Builds a ustar header (names up to 100 bytes, sizes below 8 GiB in octal, larger in base-256). */
export function tarHeader(name: string, size: number, mtime = Math.floor(Date.now() / 1000)): Uint8Array {
  const b = new Uint8Array(BLOCK);
  const nb = Buffer.from(name, 'utf8');
  if (nb.length > 100) throw new Error(`tar member name too long: ${name}`);
  b.set(nb, 0);
  const put = (off: number, len: number, v: number) => b.set(Buffer.from(v.toString(8).padStart(len - 1, '0') + '\0', 'latin1'), off);
  put(100, 8, 0o644);
  put(108, 8, 0);
  put(116, 8, 0);
  if (size < 8 ** 11) put(124, 12, size);
  else {
    b[124] = 0x80;
    let v = size;
    for (let i = 135; i > 124; i--) { b[i] = v % 256; v = Math.floor(v / 256); }
  }
  put(136, 12, mtime);
  b[156] = 0x30;
  b.set(Buffer.from('ustar\0' + '00', 'latin1'), 257);
  b.set(Buffer.from('root'), 265);
  b.set(Buffer.from('root'), 297);
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : b[i]!;
  b.set(Buffer.from(sum.toString(8).padStart(6, '0') + '\0 ', 'latin1'), 148);
  return b;
}
