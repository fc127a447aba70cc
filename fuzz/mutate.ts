// A structured mutator: bit flips, field overwrites with boundary values (both byte
// orders, at header-ish offsets more often), truncations, extensions, copies within the
// file and splices from other seeds. Everything derives from (seed image, rng seed), so
// a crash is reproduced by its recipe, never by a stored blob.
import { crc32, crc32c } from '@node-rs/crc32';
import type { Seeds } from './seeds.js';

/**
 * seed image, rng seed, number of mutations, and the mutator version (recorded recipes
 * must replay the same bytes after the mutator learns new tricks; absent = 1).
 */
export interface Recipe { seed: string; rng: number; mutations: number; version?: number }

/** The version new recipes are made with. 2: long token runs in descriptor edits. */
export const MUTATOR_VERSION = 2;

export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const BOUNDARY = [0n, 1n, 2n, 7n, 8n, 9n, 0x10n, 0x1fn, 0x20n, 0x7fn, 0x80n, 0xffn, 0x100n, 0x1ffn, 0x200n, 0x201n, 0xfffn, 0x1000n, 0xffffn, 0x10000n,
  0x7fffffffn, 0x80000000n, 0xfffffffen, 0xffffffffn, 0x100000000n, 1n << 40n, (1n << 53n) - 1n, 1n << 53n, 1n << 60n, (1n << 63n) - 1n, 1n << 63n, (1n << 64n) - 1n, (1n << 64n) - 512n];

/** Where each format keeps its tables, read from the (possibly already mutated) header. */
function tableOffsets(b: Buffer): number[] {
  const out: number[] = [];
  const u64be = (o: number) => (o + 8 <= b.length ? Number(b.readBigUInt64BE(o) & 0xffffffffffffn) : 0);
  const u64le = (o: number) => (o + 8 <= b.length ? Number(b.readBigUInt64LE(o) & 0xffffffffffffn) : 0);
  const u32le = (o: number) => (o + 4 <= b.length ? b.readUInt32LE(o) : 0);
  if (b.length < 512) return out;
  const magic = b.toString('latin1', 0, 8);
  if (magic.startsWith('QFI\xfb')) out.push(u64be(40), u64be(48), u64be(64), u64be(8));
  else if (magic.startsWith('KDMV')) out.push(u64le(28) * 512, u64le(56) * 512, u64le(48) * 512);
  else if (magic === 'conectix') { const d = u64be(16); out.push(d, d + 16, d + 576, d + 1024, u64be(d + 16)); }
  else if (magic === 'vhdxfile') {
    out.push(64 * 1024, 128 * 1024, 192 * 1024 + 16);
    for (let i = 0; i < 4; i++) out.push(u64le(192 * 1024 + 16 + i * 32 + 16));
  } else if (u32le(0x40) === 0xbeda107f) out.push(0x154, 0x170, u32le(0x154));
  else if (b[510] === 0x55 && b[511] === 0xaa) out.push(446, 512, 1024);
  return out.filter((o) => o > 0 && o < b.length);
}

/** Recomputes the checksums formats guard their headers with, so mutations get past them. */
function fixChecksums(b: Buffer): void {
  const vhd = (o: number, at: number, len: number) => {
    if (o < 0 || o + len > b.length) return;
    b.writeUInt32BE(0, o + at);
    let s = 0;
    for (let i = o; i < o + len; i++) s += b[i]!;
    b.writeUInt32BE((~s) >>> 0, o + at);
  };
  if (b.length >= 512 && b.toString('latin1', 0, 8) === 'conectix') {
    vhd(0, 64, 512);
    const d = Number(b.readBigUInt64BE(16) & 0xffffffffn);
    if (d + 1024 <= b.length && b.toString('latin1', d, d + 8) === 'cxsparse') vhd(d, 36, 1024);
  }
  if (b.length >= 512 && b.toString('latin1', b.length - 512, b.length - 504) === 'conectix') vhd(b.length - 512, 64, 512);
  if (b.toString('latin1', 0, 8) === 'vhdxfile') {
    for (const [o, len] of [[64 * 1024, 4096], [128 * 1024, 4096], [192 * 1024, 65536], [256 * 1024, 65536]] as const) {
      if (o + len > b.length) continue;
      b.writeUInt32LE(0, o + 4);
      b.writeUInt32LE(crc32c(b.subarray(o, o + len)) >>> 0, o + 4);
    }
  }
  if (b.length >= 1024 && b.toString('latin1', 512, 520) === 'EFI PART') {
    const hs = Math.min(b.readUInt32LE(512 + 12), 512);
    const ents = Number(b.readBigUInt64LE(512 + 72) & 0xffffn) * 512;
    const n = b.readUInt32LE(512 + 80) * b.readUInt32LE(512 + 84);
    if (ents + n <= b.length && n > 0) b.writeUInt32LE(crc32(b.subarray(ents, ents + n)) >>> 0, 512 + 88);
    if (hs >= 92) { b.writeUInt32LE(0, 512 + 16); b.writeUInt32LE(crc32(b.subarray(512, 512 + hs)) >>> 0, 512 + 16); }
  }
}

/** Descriptor text edits: the words a VMDK reader acts on. */
const DESC_WORDS = ['FLAT', 'SPARSE', 'ZERO', 'VMFS', 'RW', 'RDONLY', '"/etc/passwd"', '"../x.vmdk"', '"json:{}"', '0', '4294967296', '18446744073709551615', '-1',
  'createType="monolithicFlat"', 'createType="twoGbMaxExtentSparse"', 'parentCID=1', 'parentFileNameHint="/etc/passwd"', '\n', '\r\n', '"', '=', ''];

let tables: number[] = [];

/** Interesting offsets: early header bytes, sector/cluster boundaries, the VHD footer, the ISO area, the format's tables. */
function pickOffset(r: () => number, len: number): number {
  const k = r();
  if (len === 0) return 0;
  if (k < 0.15 && tables.length > 0) return Math.min(len - 1, tables[Math.floor(r() * tables.length)]! + Math.floor(r() * 64) * (r() < 0.5 ? 8 : 1));
  if (k < 0.5) return Math.floor(r() * Math.min(len, 512));
  if (k < 0.6) return Math.floor(r() * Math.min(len, 4096));
  if (k < 0.7) return Math.max(0, len - 1 - Math.floor(r() * Math.min(len, 1536)));
  if (k < 0.8) return Math.min(len - 1, Math.floor(r() * 16) * 512 + Math.floor(r() * 8) * 8);
  if (k < 0.85) return Math.min(len - 1, 192 * 1024 + Math.floor(r() * 512)); // VHDX region table
  return Math.floor(r() * len);
}

export function mutate(seeds: Seeds, recipe: Recipe): Buffer {
  const r = rng(recipe.rng);
  const seed = seeds.find((s) => s.name === recipe.seed);
  if (!seed) throw new Error(`no seed ${recipe.seed}`);
  let b = Buffer.from(seed.bytes);
  const fix = r() < 0.7;
  for (let m = 0; m < recipe.mutations; m++) {
    tables = tableOffsets(b);
    const op = r();
    if (op < 0.08) {
      // Text edit of a descriptor (text VMDK or the one embedded in a sparse VMDK).
      const start = b.length >= 36 && b.toString('latin1', 0, 4) === 'KDMV' ? Number(b.readBigUInt64LE(28) & 0xffffn) * 512 : 0;
      const text = b.toString('latin1', start, Math.min(b.length, start + 4096));
      const words = [...text.matchAll(/[A-Za-z0-9_."\/=]+/g)];
      if (words.length === 0 || start >= b.length) continue;
      const w = words[Math.floor(r() * words.length)]!;
      // Sometimes a long run of one short token: parsers with backtracking regexes choke on those.
      const runTokens = [' ', '\t ', '"', '1', 'F', '=', '" "', '# '];
      const rep = (recipe.version ?? 1) >= 2 && r() < 0.25
        ? runTokens[Math.floor(r() * runTokens.length)]!.repeat(1000 + Math.floor(r() * 20000))
        : DESC_WORDS[Math.floor(r() * DESC_WORDS.length)]!;
      const edited = text.slice(0, w.index!) + rep + text.slice(w.index! + w[0].length);
      if (start > 0) {
        // Embedded: rewrite in place, same length, so the grains behind it stay put.
        const area = Buffer.alloc(Math.min(4096, b.length - start));
        area.write(edited, 'latin1');
        area.copy(b, start);
      } else {
        b = Buffer.concat([Buffer.from(edited, 'latin1'), b.subarray(Math.min(b.length, 4096))]);
      }
    } else if (op < 0.28) {
      const off = pickOffset(r, b.length);
      if (off < b.length) b[off] = b[off]! ^ (1 << Math.floor(r() * 8));
    } else if (op < 0.6) {
      const widths = [1, 2, 4, 8];
      const w = widths[Math.floor(r() * 4)]!;
      const off = pickOffset(r, b.length) & ~(w - 1);
      if (off + w > b.length) continue;
      let v = BOUNDARY[Math.floor(r() * BOUNDARY.length)]!;
      if (r() < 0.2) v = BigInt(b.length) + BigInt(Math.floor(r() * 3) - 1);
      v &= (1n << BigInt(w * 8)) - 1n;
      const le = r() < 0.5;
      for (let i = 0; i < w; i++) b[off + (le ? i : w - 1 - i)] = Number((v >> BigInt(8 * i)) & 0xffn);
    } else if (op < 0.7) {
      const keep = r() < 0.5 ? Math.floor(r() * Math.min(b.length, 8192)) : Math.floor(r() * b.length);
      b = b.subarray(0, keep);
    } else if (op < 0.78) {
      const extra = Buffer.alloc(Math.floor(r() * 4096));
      if (r() < 0.5) for (let i = 0; i < extra.length; i++) extra[i] = Math.floor(r() * 256);
      b = Buffer.concat([b, extra]);
    } else if (op < 0.88) {
      const len = Math.floor(r() * 1024);
      const from = Math.floor(r() * b.length);
      const to = pickOffset(r, b.length);
      b.copy(b, to, from, Math.min(b.length, from + len));
    } else {
      const other = seeds[Math.floor(r() * seeds.length)]!.bytes;
      const len = Math.floor(r() * 2048);
      const from = r() < 0.5 ? 0 : Math.floor(r() * other.length);
      const to = pickOffset(r, b.length);
      other.copy(b, to, from, Math.min(other.length, from + len));
    }
  }
  if (fix) fixChecksums(b);
  return b;
}
