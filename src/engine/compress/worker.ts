// Worker side of CompressPool: runs one batch at a time, synchronously.
import { parentPort } from 'node:worker_threads';
import zlib from 'node:zlib';
import { createRequire } from 'node:module';
import type { CompressJob } from './pool.js';

const require = createRequire(import.meta.url);
let zstd: typeof import('zstd-napi') | undefined;

function run(job: CompressJob): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let i = 0; i < job.chunks.length; i++) {
    const c = job.chunks[i]!;
    const data = Buffer.from(c.buffer, c.byteOffset, c.byteLength);
    if (job.codec === 'zstd') {
      zstd ??= require('zstd-napi') as typeof import('zstd-napi');
      out.push(job.op === 'compress'
        ? zstd.compress(data, job.level !== undefined ? { compressionLevel: job.level } : undefined)
        : zstd.decompress(data));
    } else if (job.op === 'compress') {
      const opts = { level: job.level ?? zlib.constants.Z_DEFAULT_COMPRESSION };
      // qcow2 clusters: raw deflate with a 4 KiB window (what qemu writes); vmdk grains: zlib.
      out.push(job.codec === 'deflate-raw' ? zlib.deflateRawSync(data, { ...opts, windowBits: 12, memLevel: 9 }) : zlib.deflateSync(data, opts));
    } else {
      const max = job.outputSizes?.[i];
      const opts = max !== undefined ? { maxOutputLength: Math.max(1, max) } : {};
      out.push(job.codec === 'deflate-raw' ? zlib.inflateRawSync(data, { ...opts, windowBits: 15 }) : zlib.inflateSync(data, opts));
    }
  }
  return out;
}

parentPort!.on('message', (job: CompressJob) => {
  try {
    const chunks = run(job);
    // Copied, not transferred: zlib and zstd outputs may share pooled ArrayBuffers.
    parentPort!.postMessage({ ok: true, chunks });
  } catch (err) {
    parentPort!.postMessage({ ok: false, error: (err as Error).message });
  }
});
