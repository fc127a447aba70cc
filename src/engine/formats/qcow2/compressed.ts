// Compressed clusters: decoding descriptors' payloads (raw deflate or zstd), inline for a
// few clusters and through the worker pool for many.

import zlib from 'node:zlib';
import { createRequire } from 'node:module';
import { CorruptImage } from '../../errors.js';
import { compressPool, type Codec } from '../../compress/pool.js';
import { COMPRESSION_ZSTD } from './constants.js';

const require = createRequire(import.meta.url);
let zstdLib: typeof import('zstd-napi') | undefined;
function zstd(): typeof import('zstd-napi') {
  zstdLib ??= require('zstd-napi') as typeof import('zstd-napi');
  return zstdLib;
}

export function codecOf(compressionType: number): Codec {
  return compressionType === COMPRESSION_ZSTD ? 'zstd' : 'deflate-raw';
}

/**
 * Length of the first zstd frame in `buf`. A compressed cluster's payload is read up to
 * the end of its last 512-byte sector, so it can carry the start of the next cluster's
 * data; one-shot zstd decoders refuse trailing bytes, so we cut the frame out first.
 * Returns buf.length when the frame is truncated (the decoder then reports it).
 */
export function zstdFrameLength(buf: Uint8Array): number {
  if (buf.length < 6 || buf[0] !== 0x28 || buf[1] !== 0xb5 || buf[2] !== 0x2f || buf[3] !== 0xfd) return buf.length;
  const fhd = buf[4]!;
  const fcsFlag = fhd >> 6, single = (fhd >> 5) & 1, checksum = (fhd >> 2) & 1, dictFlag = fhd & 3;
  let p = 5 + (single ? 0 : 1) + [0, 1, 2, 4][dictFlag]! + [single ? 1 : 0, 2, 4, 8][fcsFlag]!;
  for (;;) {
    if (p + 3 > buf.length) return buf.length;
    const bh = buf[p]! | (buf[p + 1]! << 8) | (buf[p + 2]! << 16);
    const last = bh & 1, type = (bh >> 1) & 3, size = bh >>> 3;
    p += 3 + (type === 1 ? 1 : size);
    if (last) break;
  }
  p += checksum ? 4 : 0;
  return Math.min(p, buf.length);
}

/** Decompresses one cluster synchronously; CorruptImage names the host offset on failure. */
export function decompressCluster(data: Uint8Array, compressionType: number, clusterSize: number, file: string, hostOffset: number): Uint8Array {
  let out: Uint8Array;
  try {
    if (compressionType === COMPRESSION_ZSTD) {
      out = zstd().decompress(Buffer.from(data.buffer, data.byteOffset, zstdFrameLength(data)));
    } else {
      out = zlib.inflateRawSync(data, { maxOutputLength: clusterSize });
    }
  } catch (err) {
    throw new CorruptImage(`compressed cluster cannot be decompressed: ${(err as Error).message}`, { file, offset: hostOffset, cause: err });
  }
  if (out.length !== clusterSize) {
    throw new CorruptImage(`compressed cluster decompresses to ${out.length} bytes, expected ${clusterSize}`, { file, offset: hostOffset });
  }
  return out;
}

const POOL_BATCH = 32;

/** Decompresses many clusters on the worker pool, in batches; results in input order. */
export async function decompressMany(chunks: Uint8Array[], hostOffsets: number[], compressionType: number, clusterSize: number, file: string): Promise<Uint8Array[]> {
  const codec = codecOf(compressionType);
  const input = compressionType === COMPRESSION_ZSTD ? chunks.map((c) => c.subarray(0, zstdFrameLength(c))) : chunks;
  const jobs: Promise<Uint8Array[]>[] = [];
  for (let i = 0; i < input.length; i += POOL_BATCH) {
    const part = input.slice(i, i + POOL_BATCH);
    jobs.push(compressPool().run({ op: 'decompress', codec, chunks: part, outputSizes: part.map(() => clusterSize) }).catch((err: Error) => {
      throw new CorruptImage(`compressed cluster cannot be decompressed: ${err.message}`, { file, offset: hostOffsets[i], cause: err });
    }));
  }
  const out = (await Promise.all(jobs)).flat();
  out.forEach((o, i) => {
    if (o.length !== clusterSize) throw new CorruptImage(`compressed cluster decompresses to ${o.length} bytes, expected ${clusterSize}`, { file, offset: hostOffsets[i] });
  });
  return out;
}
