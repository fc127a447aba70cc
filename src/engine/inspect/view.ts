// What the inspector sees of an image: the first bytes (as many as the headers and
// tables near the start need, see need.ts), the last few KiB (VHD footer, VMDK stream
// footer) and the total size. Stream and file inspection build the same view, so they
// reach the same verdict.

export interface ImageView {
  /** The first head.length bytes of the image (may be the whole file). */
  head: Uint8Array;
  /** The last tail.length bytes (tail.length = min(size, TAIL_BYTES)). */
  tail: Uint8Array;
  /** Total size in bytes. */
  size: number;
}

/** Bytes kept from the end: VHD footer (512) and a streamOptimized VMDK footer + EOS (1536). */
export const TAIL_BYTES = 4096;
/** Bytes always kept from the start: every magic, the ISO descriptors at 32 KiB, GPT entries. */
export const HEAD_MIN = 64 * 1024;
/** Hard cap on kept head bytes, whatever the headers claim. */
export const HEAD_CAP = 16 * 1024 * 1024;

/** 2^53: offsets at or above this are treated as "huge" (never in any real file). */
export const HUGE = Number.MAX_SAFE_INTEGER;

export function has(b: Uint8Array, off: number, len: number): boolean {
  return off >= 0 && len >= 0 && off + len <= b.length;
}

export function u8(b: Uint8Array, off: number): number { return b[off]!; }
export function u16le(b: Uint8Array, off: number): number { return b[off]! | (b[off + 1]! << 8); }
export function u16be(b: Uint8Array, off: number): number { return (b[off]! << 8) | b[off + 1]!; }
export function u32le(b: Uint8Array, off: number): number {
  return (b[off]! | (b[off + 1]! << 8) | (b[off + 2]! << 16)) + b[off + 3]! * 0x1000000;
}
export function u32be(b: Uint8Array, off: number): number {
  return b[off]! * 0x1000000 + ((b[off + 1]! << 16) | (b[off + 2]! << 8) | b[off + 3]!);
}
/**
 * 64-bit values as numbers: exact below 2^53, the nearest double above (comparisons
 * against file sizes and limits stay right; nothing that large is ever used as an offset).
 */
export function u64le(b: Uint8Array, off: number): number {
  return u32le(b, off + 4) * 0x100000000 + u32le(b, off);
}
export function u64be(b: Uint8Array, off: number): number {
  return u32be(b, off) * 0x100000000 + u32be(b, off + 4);
}
/** True when the raw 64-bit big-endian value is all ones (qcow/vhd "none" markers). */
export function allOnes(b: Uint8Array, off: number, len: number): boolean {
  for (let i = 0; i < len; i++) if (b[off + i] !== 0xff) return false;
  return true;
}

export function ascii(b: Uint8Array, off: number, len: number): string {
  let s = '';
  const end = Math.min(b.length, off + len);
  for (let i = off; i < end; i++) s += String.fromCharCode(b[i]!);
  return s;
}
export function bytesEq(b: Uint8Array, off: number, magic: string): boolean {
  if (off < 0 || off + magic.length > b.length) return false;
  for (let i = 0; i < magic.length; i++) if (b[off + i] !== magic.charCodeAt(i)) return false;
  return true;
}
export function isZero(b: Uint8Array, off: number, len: number): boolean {
  const end = Math.min(b.length, off + len);
  for (let i = off; i < end; i++) if (b[i] !== 0) return false;
  return true;
}

/** Bytes [off, off+len) of the image when the view holds them (head or tail), else null. */
export function slice(v: ImageView, off: number, len: number): Uint8Array | null {
  if (off < 0 || len < 0 || off + len > v.size) return null;
  if (off + len <= v.head.length) return v.head.subarray(off, off + len);
  const tailStart = v.size - v.tail.length;
  if (off >= tailStart) return v.tail.subarray(off - tailStart, off - tailStart + len);
  return null;
}

/** Decodes a NUL-terminated/fixed-size UTF-16 (LE or BE) name, stopping at the first NUL. */
export function utf16(b: Uint8Array, off: number, len: number, le: boolean): string {
  let s = '';
  for (let i = off; i + 1 < off + len && i + 1 < b.length; i += 2) {
    const c = le ? u16le(b, i) : u16be(b, i);
    if (c === 0) break;
    s += String.fromCharCode(c);
  }
  return s;
}

/** Printable rendering of a name taken from an image (for messages and JSON): control bytes escaped. */
export function printable(s: string, max = 1024): string {
  const cut = s.length > max ? s.slice(0, max) + '…' : s;
  // eslint-disable-next-line no-control-regex
  return cut.replace(/[\x00-\x1f\x7f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

/** A need (see need.ts) that fits under the cap, or 0 when it does not: buffering part of a table is useless. */
export function fit(n: number): number { return n <= HEAD_CAP ? n : 0; }

/** A byte size as qemu reports it: whole sectors (qemu keeps sizes as sector counts, rounding down). */
export function floorTo(n: number, unit = 512): number { return n < Number.MAX_SAFE_INTEGER ? n - (n % unit) : n; }
