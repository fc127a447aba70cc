// A structured mutator: bit flips, field overwrites with boundary values (both byte
// orders, at header-ish offsets more often), truncations, extensions, copies within the
// file and splices from other seeds. Everything derives from (seed image, rng seed), so
// a crash is reproduced by its recipe, never by a stored blob.
import type { Seeds } from './seeds.js';

export interface Recipe { seed: string; rng: number; mutations: number }

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

/** Interesting offsets: early header bytes, sector/cluster boundaries, the VHD footer, the ISO area. */
function pickOffset(r: () => number, len: number): number {
  const k = r();
  if (len === 0) return 0;
  if (k < 0.45) return Math.floor(r() * Math.min(len, 512));
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
  for (let m = 0; m < recipe.mutations; m++) {
    const op = r();
    if (op < 0.25) {
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
  return b;
}
