// Listing an initramfs: one or more newc cpio archives back to back, each plain or
// compressed (gzip, xz, zstd, bzip2), typically an uncompressed early-microcode cpio
// followed by the compressed main one. We only need the member names (to see which
// kernel modules made it in), so data is skipped, not extracted.
import { createRequire } from 'node:module';
import { Readable, type Transform } from 'node:stream';
import zlib from 'node:zlib';
import { CorruptImage, UnsupportedFeature } from '../engine/errors.js';

const require = createRequire(import.meta.url);

/** Caps against decompression bombs and hostile archives. */
const MAX_DECOMPRESSED = 1024 * 1024 * 1024;
const MAX_ENTRIES = 200_000;
const MAX_SEGMENTS = 16;

export interface CpioEntry { name: string; mode: number; size: number }
export interface InitramfsListing {
  /** One per archive found: how it was stored and how many members it had. */
  segments: Array<{ compression: 'none' | 'gzip' | 'xz' | 'zstd' | 'bzip2'; entries: number }>;
  entries: CpioEntry[];
  warnings: string[];
}

type Codec = 'gzip' | 'xz' | 'zstd' | 'bzip2';

function sniff(b: Uint8Array, o: number): Codec | 'cpio' | 'lz4' | 'lzma' | 'lzo' | null {
  const at = (i: number) => b[o + i];
  if (at(0) === 0x30 && at(1) === 0x37 && at(2) === 0x30 && at(3) === 0x37 && at(4) === 0x30 && (at(5) === 0x31 || at(5) === 0x32)) return 'cpio';
  if (at(0) === 0x1f && (at(1) === 0x8b || at(1) === 0x9e)) return 'gzip';
  if (at(0) === 0xfd && at(1) === 0x37 && at(2) === 0x7a && at(3) === 0x58 && at(4) === 0x5a && at(5) === 0x00) return 'xz';
  if (at(0) === 0x28 && at(1) === 0xb5 && at(2) === 0x2f && at(3) === 0xfd) return 'zstd';
  if (at(0) === 0x42 && at(1) === 0x5a && at(2) === 0x68) return 'bzip2';
  if (at(0) === 0x02 && at(1) === 0x21 && at(2) === 0x4c && at(3) === 0x18) return 'lz4';
  if (at(0) === 0x5d && at(1) === 0x00 && at(2) === 0x00) return 'lzma';
  if (at(0) === 0x89 && at(1) === 0x4c && at(2) === 0x5a && at(3) === 0x4f) return 'lzo';
  return null;
}

function decoder(codec: Codec): Transform {
  switch (codec) {
    case 'gzip': return zlib.createGunzip();
    case 'xz': return (require('lzma-native') as { createDecompressor(o: object): Transform }).createDecompressor({ memlimit: 256 * 1024 * 1024 });
    case 'zstd': { const z = require('zstd-napi') as typeof import('zstd-napi'); return new z.DecompressStream({ windowLogMax: 27 }); }
    case 'bzip2': return (require('unbzip2-stream') as () => Transform)();
  }
}

/**
 * Decompresses the rest of the file. A decoder error after some output (trailing
 * padding after the last frame is common) keeps the output and reports a warning.
 */
async function inflate(codec: Codec, data: Uint8Array, name: string, warnings: string[]): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  const dec = decoder(codec);
  try {
    const src = Readable.from([Buffer.from(data.buffer, data.byteOffset, data.byteLength)]);
    src.pipe(dec);
    for await (const c of dec as AsyncIterable<Buffer>) {
      total += c.length;
      if (total > MAX_DECOMPRESSED) {
        dec.destroy();
        throw new UnsupportedFeature(`initramfs ${name} decompresses to more than ${MAX_DECOMPRESSED} bytes`);
      }
      chunks.push(c);
    }
  } catch (err) {
    if (err instanceof UnsupportedFeature) throw err;
    if (total === 0) throw new CorruptImage(`initramfs ${name}: ${codec} data is corrupt (${(err as Error).message})`);
    warnings.push(`${name}: ${codec} stream ended with an error after ${total} bytes (${(err as Error).message}); listing what was decoded`);
  }
  return Buffer.concat(chunks, total);
}

function hex8(b: Uint8Array, o: number): number {
  const s = new TextDecoder().decode(b.subarray(o, o + 8));
  if (!/^[0-9a-fA-F]{8}$/.test(s)) return NaN;
  return parseInt(s, 16);
}

const align4 = (n: number) => (n + 3) & ~3;

/** Parses one newc archive at `pos`; returns the offset after its trailer. */
function parseCpio(b: Uint8Array, pos: number, out: CpioEntry[], name: string): number {
  while (true) {
    if (pos + 110 > b.length) throw new CorruptImage(`initramfs ${name}: truncated cpio header at ${pos}`);
    if (sniff(b, pos) !== 'cpio') throw new CorruptImage(`initramfs ${name}: bad cpio magic at ${pos}`);
    const mode = hex8(b, pos + 14);
    const size = hex8(b, pos + 54);
    const namesize = hex8(b, pos + 94);
    if (!Number.isFinite(mode) || !Number.isFinite(size) || !Number.isFinite(namesize) || namesize < 1 || namesize > 4096) {
      throw new CorruptImage(`initramfs ${name}: bad cpio header fields at ${pos}`);
    }
    const nameStart = pos + 110;
    if (nameStart + namesize > b.length) throw new CorruptImage(`initramfs ${name}: truncated cpio name at ${pos}`);
    const entryName = new TextDecoder().decode(b.subarray(nameStart, nameStart + namesize - 1));
    const dataStart = align4(nameStart + namesize);
    const next = align4(dataStart + size);
    if (entryName === 'TRAILER!!!') return Math.min(next, b.length);
    if (dataStart + size > b.length) throw new CorruptImage(`initramfs ${name}: member ${entryName} runs past the end`);
    if (out.length >= MAX_ENTRIES) throw new UnsupportedFeature(`initramfs ${name}: more than ${MAX_ENTRIES} members`);
    out.push({ name: entryName.replace(/^\.\//, ''), mode, size });
    pos = next;
  }
}

async function listSegments(b: Uint8Array, name: string, res: InitramfsListing, depth: number): Promise<void> {
  let pos = 0;
  while (pos < b.length) {
    // Archives are padded (to 4 or 512 bytes) with zeros between them.
    while (pos < b.length && b[pos] === 0) pos++;
    if (pos >= b.length) break;
    if (res.segments.length >= MAX_SEGMENTS) throw new UnsupportedFeature(`initramfs ${name}: more than ${MAX_SEGMENTS} archives`);
    const kind = sniff(b, pos);
    if (kind === 'cpio') {
      const before = res.entries.length;
      pos = parseCpio(b, pos, res.entries, name);
      res.segments.push({ compression: 'none', entries: res.entries.length - before });
      continue;
    }
    if (kind === 'gzip' || kind === 'xz' || kind === 'zstd' || kind === 'bzip2') {
      if (depth > 0) throw new UnsupportedFeature(`initramfs ${name}: nested compression`);
      const inner = await inflate(kind, b.subarray(pos), name, res.warnings);
      const before = res.entries.length;
      const segs = res.segments.length;
      await listSegments(inner, name, res, depth + 1);
      // The decoded stream may hold several archives; account them to this codec.
      res.segments.splice(segs, res.segments.length - segs, { compression: kind, entries: res.entries.length - before });
      // The compressed archive runs to the end of the file (the kernel reads it so).
      return;
    }
    if (kind) throw new UnsupportedFeature(`initramfs ${name}: ${kind} compression is not supported`);
    throw new CorruptImage(`initramfs ${name}: unrecognised data at offset ${pos}`);
  }
}

/** Lists every member of every archive in an initramfs image. */
export async function listInitramfs(data: Uint8Array, name = 'initramfs'): Promise<InitramfsListing> {
  const res: InitramfsListing = { segments: [], entries: [], warnings: [] };
  await listSegments(data, name, res, 0);
  return res;
}

/** Kernel module files (.ko, .ko.xz, .ko.zst, .ko.gz) by module name. */
export function modulesIn(entries: CpioEntry[]): Map<string, string> {
  const m = new Map<string, string>();
  for (const e of entries) {
    const r = /(?:^|\/)([^/]+)\.ko(?:\.(?:xz|zst|gz))?$/.exec(e.name);
    // Module names use - and _ interchangeably.
    if (r) m.set(r[1]!.replace(/-/g, '_'), e.name);
  }
  return m;
}
