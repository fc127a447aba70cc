// Compressed-file wrappers (image.qcow2.xz, disk.raw.gz, ...): gzip, xz, zstd and bzip2.
// The inner image needs random access, so the stream is decompressed once into a sparse
// temporary file (all-zero 64 KiB blocks become holes), unlinked as soon as it is open,
// and the inner format is probed and opened from it through the registry. Whatever the
// inner image refers to (backing files, extents) is refused: it came out of an archive.

import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { PassThrough, Readable, type Transform } from 'node:stream';
import { createRequire } from 'node:module';
import { spawn, spawnSync } from 'node:child_process';
import type { BlockDevice, DeviceInfo, Extent, FormatDriver, OpenContext, ProbeInput } from '../../block/device.js';
import type { ByteSource } from '../../io/source.js';
import { detectFormat, probeSource } from '../../block/open.js';
import { denyAllReferences } from '../../policy.js';
import { CorruptImage, ImgportError, UnsafeImage, UnsupportedFeature, ioError } from '../../errors.js';

const require = createRequire(import.meta.url);

/** Largest decompressed image we spool; IMGPORT_DECOMPRESS_LIMIT (bytes) or setDecompressLimit() change it. */
let limit = Number(process.env.IMGPORT_DECOMPRESS_LIMIT) > 0 ? Number(process.env.IMGPORT_DECOMPRESS_LIMIT) : 4 * 2 ** 40;
export function setDecompressLimit(bytes: number): void { limit = bytes; }
export function decompressLimit(): number { return limit; }

/** Where spool files go (default os.tmpdir()); IMGPORT_TMPDIR overrides. */
function spoolDir(): string { return process.env.IMGPORT_TMPDIR || os.tmpdir(); }

type Codec = 'gzip' | 'xz' | 'zstd' | 'bzip2';

const MAGIC: Record<Codec, (h: Uint8Array) => boolean> = {
  // ID1 ID2, CM=8 (deflate), reserved flag bits clear.
  gzip: (h) => h.length >= 10 && h[0] === 0x1f && h[1] === 0x8b && h[2] === 8 && (h[3]! & 0xe0) === 0,
  xz: (h) => h.length >= 6 && h[0] === 0xfd && h[1] === 0x37 && h[2] === 0x7a && h[3] === 0x58 && h[4] === 0x5a && h[5] === 0x00,
  zstd: (h) => h.length >= 4 && h[0] === 0x28 && h[1] === 0xb5 && h[2] === 0x2f && h[3] === 0xfd,
  // "BZh" + block size digit + block magic (pi) or end-of-stream magic (sqrt pi).
  bzip2: (h) => h.length >= 10 && h[0] === 0x42 && h[1] === 0x5a && h[2] === 0x68 && h[3]! >= 0x31 && h[3]! <= 0x39
    && ((h[4] === 0x31 && h[5] === 0x41 && h[6] === 0x59 && h[7] === 0x26 && h[8] === 0x53 && h[9] === 0x59)
      || (h[4] === 0x17 && h[5] === 0x72 && h[6] === 0x45 && h[7] === 0x38 && h[8] === 0x50 && h[9] === 0x90)),
};

function decompressor(codec: Codec): Transform {
  switch (codec) {
    case 'gzip':
      // Runs on the libuv thread pool; concatenated members are read like gunzip does.
      return zlib.createGunzip({ chunkSize: 256 * 1024 });
    case 'xz': {
      const lzma = require('lzma-native') as { createDecompressor(o: object): Transform };
      // liblzma decodes on its own thread; the memory limit covers xz -9 (64 MiB dictionary).
      return lzma.createDecompressor({ memlimit: 128 * 1024 * 1024, synchronous: false, bufsize: 1024 * 1024 });
    }
    case 'zstd': {
      const zstd = require('zstd-napi') as typeof import('zstd-napi');
      // Windows above 128 MiB (zstd --long=31) are refused rather than allocated.
      return new zstd.DecompressStream({ windowLogMax: 27 });
    }
    case 'bzip2': {
      const bz2 = require('unbzip2-stream') as () => Transform;
      return bz2();
    }
  }
}

interface Flow { in: number; out: number }

/**
 * The compressed bytes in chunks sized so one chunk inflates to a few MiB at the ratio
 * seen so far: decoders push all the output of a chunk at once, and a chunk of a
 * zero-filled disk can expand ten-thousandfold.
 */
async function* readAll(src: ByteSource, flow: Flow): AsyncGenerator<Buffer> {
  let off = 0;
  while (off < src.size) {
    // Until output is seen, assume a zero-filled disk (about 1000:1).
    const ratio = flow.in > 0 && flow.out > 0 ? Math.max(1, flow.out / flow.in) : 1024;
    const step = Math.max(512, Math.min(1024 * 1024, Math.floor((4 * 1024 * 1024) / ratio)));
    const b = Buffer.allocUnsafe(Math.min(step, src.size - off));
    const n = await src.read(b, off);
    if (n === 0) break;
    off += n;
    flow.in += n;
    yield n < b.length ? b.subarray(0, n) : b;
  }
}

/**
 * The decompressed bytes as an async iterable with backpressure. Plain pipe() rather than
 * pipeline(): unbzip2-stream is an old-style through stream that pipeline() reports as a
 * premature close.
 */
async function* streamDecoded(codec: Codec, src: ByteSource, flow: Flow): AsyncGenerator<Buffer> {
  // A small object-mode buffer: each compressed chunk waiting here may be a large expansion.
  // liblzma pushes everything a chunk decodes to at once: small fixed chunks bound that.
  const input = Readable.from(codec === 'xz' ? readAllFixed(src, flow, 4096) : readAll(src, flow), { highWaterMark: 1 });
  const dec = decompressor(codec);
  const out = new PassThrough({ highWaterMark: 1024 * 1024 });
  input.on('error', (e) => out.destroy(e));
  dec.on('error', (e: Error) => out.destroy(e));
  input.pipe(dec).pipe(out);
  try {
    for await (const c of out) yield c as Buffer;
  } finally {
    input.destroy();
    (dec as Transform & { destroy?: () => void }).destroy?.();
  }
}

/**
 * zstd pulled through the native stream context with a fixed output buffer: the decoder
 * never produces more than we have consumed, whatever the ratio (a zero-filled disk
 * compresses 30000:1).
 */
async function* zstdDecoded(src: ByteSource, flow: Flow): AsyncGenerator<Buffer> {
  const binding = require('zstd-napi/binding') as {
    DCtx: new () => { decompressStream(d: Uint8Array, s: Uint8Array): [number, number, number]; setParameter(p: number, v: number): void };
    DParameter: { windowLogMax: number };
  };
  const dctx = new binding.DCtx();
  // Windows above 128 MiB (zstd --long=31) are refused rather than allocated.
  dctx.setParameter(binding.DParameter.windowLogMax, 27);
  const out = Buffer.allocUnsafe(1024 * 1024);
  let inFrame = false;
  for await (const chunk of readAllFixed(src, flow)) {
    let rest: Buffer = chunk;
    for (;;) {
      const [ret, produced, consumed] = dctx.decompressStream(out, rest);
      rest = rest.subarray(consumed);
      // An empty call after a finished frame returns the next frame's header size: ignore it.
      if (produced > 0 || consumed > 0) inFrame = ret !== 0;
      // Consumers copy what they keep before asking for more, so the buffer is reused.
      if (produced > 0) yield out.subarray(0, produced);
      if (rest.length === 0 && produced < out.length) break;
    }
  }
  if (inFrame) throw new Error('stream ends in the middle of a frame');
}

async function* readAllFixed(src: ByteSource, flow: Flow, step = 256 * 1024): AsyncGenerator<Buffer> {
  for (let off = 0; off < src.size; off += step) {
    const b = Buffer.allocUnsafe(Math.min(step, src.size - off));
    const n = await src.read(b, off);
    if (n === 0) break;
    flow.in += n;
    yield n < b.length ? b.subarray(0, n) : b;
  }
}

let cliCache: Map<string, boolean> | undefined;
function hasCli(name: string): boolean {
  cliCache ??= new Map();
  let ok = cliCache.get(name);
  if (ok === undefined) {
    ok = spawnSync(name, ['--version'], { stdio: 'ignore' }).status === 0;
    cliCache.set(name, ok);
  }
  return ok;
}

/**
 * xz and bzip2 through their command-line decoders when installed: native speed on
 * another core, and the pipe's backpressure bounds memory (the libraries push all the
 * output of an input chunk at once).
 */
async function* cliDecoded(cmd: string, args: string[], src: ByteSource, flow: Flow): AsyncGenerator<Buffer> {
  const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (d: string) => { if (stderr.length < 4096) stderr += d; });
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  let feedErr: unknown;
  const feed = (async () => {
    try {
      for await (const chunk of readAllFixed(src, flow)) {
        if (!child.stdin.write(chunk)) await new Promise<void>((r) => { child.stdin.once('drain', r); child.stdin.once('close', r); });
        if (child.stdin.destroyed) break;
      }
    } catch (err) {
      feedErr = err;
    } finally {
      child.stdin.end();
    }
  })();
  child.stdin.on('error', () => { /* EPIPE when the decoder stops early: its exit status tells why */ });
  let ok = false;
  try {
    for await (const c of child.stdout) yield c as Buffer;
    await feed;
    if (feedErr) throw feedErr;
    const code = await exited;
    if (code !== 0) throw new Error(stderr.trim().split('\n')[0] || `${cmd} exited with status ${code}`);
    ok = true;
  } finally {
    if (!ok) child.kill('SIGKILL');
    await feed;
  }
}

function decoded(codec: Codec, src: ByteSource, flow: Flow): AsyncGenerator<Buffer> {
  if (codec === 'zstd') return zstdDecoded(src, flow);
  // IMGPORT_DECOMPRESS_CLI=0 forces the in-process libraries.
  const cli = process.env.IMGPORT_DECOMPRESS_CLI !== '0';
  if (codec === 'xz' && cli && hasCli('xz')) return cliDecoded('xz', ['-dc', '--memlimit=256MiB', '-T1'], src, flow);
  if (codec === 'bzip2' && cli && hasCli('bzip2')) return cliDecoded('bzip2', ['-dc'], src, flow);
  return streamDecoded(codec, src, flow);
}

const BLOCK = 64 * 1024;
const STAGE = 4 * 1024 * 1024;
const ZERO_BLOCK = Buffer.alloc(BLOCK);

/** Decompresses `src` into the file behind `fh`, leaving holes for zero blocks. Returns the decompressed size. */
async function spool(codec: Codec, src: ByteSource, fh: fs.FileHandle, spoolName: string): Promise<number> {
  const stage = Buffer.allocUnsafe(STAGE);
  let fill = 0;
  let base = 0;
  const flush = async () => {
    // Write runs of non-zero blocks; zero blocks stay holes.
    let runStart = -1;
    for (let o = 0; ; o += BLOCK) {
      const n = Math.min(BLOCK, fill - o);
      const zero = n <= 0 || stage.subarray(o, o + n).equals(ZERO_BLOCK.subarray(0, n));
      if (!zero && runStart < 0) runStart = o;
      if (zero && runStart >= 0) {
        const end = Math.min(o, fill);
        try { await fh.write(stage, runStart, end - runStart, base + runStart); } catch (err) { throw ioError(err, spoolName, 'write'); }
        runStart = -1;
      }
      if (n <= 0) break;
    }
    base += fill;
    fill = 0;
  };
  const flow: Flow = { in: 0, out: 0 };
  const sink = async (chunks: AsyncIterable<Buffer>) => {
    for await (const chunk of chunks) {
      flow.out += chunk.length;
      let c = chunk;
      while (c.length > 0) {
        const n = Math.min(c.length, STAGE - fill);
        c.copy(stage, fill, 0, n);
        fill += n;
        c = c.subarray(n);
        if (base + fill > limit) {
          throw new UnsafeImage(`${codec} stream decompresses to more than the ${limit}-byte limit`, { file: src.name });
        }
        if (fill === STAGE) await flush();
      }
    }
  };
  try {
    await sink(decoded(codec, src, flow));
  } catch (err) {
    if (err instanceof ImgportError) throw err;
    const msg = (err as Error).message ?? String(err);
    if (/memory|memlimit|window/i.test(msg)) throw new UnsupportedFeature(`${codec} stream needs more memory than allowed to decompress: ${msg}`, { file: src.name, cause: err });
    throw new CorruptImage(`${codec} stream is corrupt or truncated: ${msg}`, { file: src.name, cause: err });
  }
  await flush();
  if (base === 0) throw new CorruptImage(`${codec} stream decompresses to nothing`, { file: src.name });
  try { await fh.truncate(base); } catch (err) { throw ioError(err, spoolName, 'truncate'); }
  return base;
}

/** The inner image, seen from outside: same bytes, named after the compressed file. */
class WrappedDevice implements BlockDevice {
  readonly format: string;
  readonly virtualSize: number;
  readonly backing = null;
  constructor(readonly name: string, private inner: BlockDevice, private codec: Codec, private outer: ByteSource, private spooled: number) {
    this.format = inner.format;
    this.virtualSize = inner.virtualSize;
  }
  read(buf: Uint8Array, offset: number): Promise<void> { return this.inner.read(buf, offset); }
  async *extents(offset: number, length: number): AsyncIterable<Extent> {
    // Host offsets would point into the temporary file: meaningless to the caller.
    for await (const e of this.inner.extents(offset, length)) {
      const { hostOffset: _h, ...rest } = e;
      yield rest;
    }
  }
  describe(): DeviceInfo {
    const d = this.inner.describe();
    return {
      ...d,
      humanLines: [...(d.humanLines ?? []), `compressed: ${this.codec} (${this.outer.size} bytes, ${this.spooled} bytes decompressed to a temporary file)`],
      formatSpecific: d.formatSpecific
        ? { ...d.formatSpecific, data: { ...d.formatSpecific.data, 'compressed-wrapper': this.codec } }
        : { type: this.inner.format, data: { 'compressed-wrapper': this.codec } },
    };
  }
  async close(): Promise<void> {
    try { await this.inner.close(); } finally { await this.outer.close(); }
  }
}

async function openWrapped(codec: Codec, source: ByteSource, ctx: OpenContext): Promise<BlockDevice> {
  if (ctx.writable) throw new UnsupportedFeature(`${codec}-compressed images can only be opened read-only`, { file: source.name });
  let dir: string;
  try { dir = await fs.mkdtemp(path.join(spoolDir(), 'imgport-unpack-')); } catch (err) { throw ioError(err, spoolDir(), 'cannot create a temporary directory'); }
  const spoolPath = path.join(dir, 'inner');
  let innerSrc: SpoolSource | undefined;
  try {
    const fh = await fs.open(spoolPath, 'w+', 0o600).catch((err) => { throw ioError(err, spoolPath, 'cannot create'); });
    innerSrc = new SpoolSource(spoolPath, fh);
    // Unlinked before any byte is written: nothing is left behind, even if we are killed.
    await fs.rm(dir, { recursive: true, force: true });
    innerSrc.size = await spool(codec, source, fh, spoolPath);
    const size = innerSrc.size;
    const probe = await probeSource(innerSrc);
    const driver = detectFormat({ ...probe, name: source.name });
    if (driver.name in MAGIC) {
      throw new UnsupportedFeature(`${codec} stream contains another compressed stream (${driver.name}); nested compression is not opened`, { file: source.name });
    }
    const innerCtx: OpenContext = {
      policy: denyAllReferences,
      writable: false,
      // Backing references are looked up so that they are refused, not silently read as zeros.
      openBacking: true,
      openReference: async (reference, fromImage, _format, kind) => { denyAllReferences.resolve(reference, fromImage, kind); throw new Error('unreachable'); },
      openFile: async (reference, fromImage, kind) => { denyAllReferences.resolve(reference, fromImage, kind); throw new Error('unreachable'); },
    };
    const inner = await driver.open(innerSrc, innerCtx);
    return new WrappedDevice(source.name, inner, codec, source, size);
  } catch (err) {
    await innerSrc?.close().catch(() => {});
    await fs.rm(dir, { recursive: true, force: true }).catch(() => {});
    throw err;
  }
}

/** The unlinked spool file, read through the handle it was written with. */
class SpoolSource implements ByteSource {
  size = 0;
  private closed = false;
  constructor(readonly name: string, private fh: fs.FileHandle) {}
  async read(buf: Uint8Array, offset: number): Promise<number> {
    const want = Math.min(buf.length, Math.max(0, this.size - offset));
    let done = 0;
    try {
      while (done < want) {
        const { bytesRead } = await this.fh.read(buf, done, want - done, offset + done);
        if (bytesRead === 0) break;
        done += bytesRead;
      }
    } catch (err) {
      throw ioError(err, this.name, `read at offset ${offset + done}`);
    }
    return done;
  }
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.fh.close();
  }
}

function makeDriver(codec: Codec, description: string): FormatDriver {
  return {
    name: codec,
    description,
    probe: (input: ProbeInput) => (MAGIC[codec](input.head) ? 90 : 0),
    open: (source, ctx) => openWrapped(codec, source, ctx),
  };
}

export const gzipFormat = makeDriver('gzip', 'gzip-compressed image (read-only; the inner format is detected)');
export const xzFormat = makeDriver('xz', 'xz-compressed image (read-only; the inner format is detected)');
export const zstdFormat = makeDriver('zstd', 'zstd-compressed image (read-only; the inner format is detected)');
export const bzip2Format = makeDriver('bzip2', 'bzip2-compressed image (read-only; the inner format is detected)');
export const compressedFormats = [gzipFormat, xzFormat, zstdFormat, bzip2Format];
