// Compression and decompression on worker threads, so every core works during a
// compressed conversion. Jobs are batches of chunks (e.g. 32 clusters) so the cost of
// crossing threads is paid per batch, not per cluster.

import { Worker } from 'node:worker_threads';
import os from 'node:os';

export type Codec = 'deflate-raw' | 'deflate' | 'zstd';

export interface CompressJob {
  op: 'compress' | 'decompress';
  codec: Codec;
  chunks: Uint8Array[];
  /** compress: level (codec default when absent); decompress: exact output size of each chunk. */
  level?: number;
  outputSizes?: number[];
}

interface Pending { resolve(v: Uint8Array[]): void; reject(e: Error): void }

// Under tsx (tests, bench) this module is TypeScript and the worker inherits tsx's loader.
const workerUrl = new URL(import.meta.url.endsWith('.ts') ? './worker.ts' : './worker.js', import.meta.url);

export class CompressPool {
  private workers: Worker[] = [];
  private idle: Worker[] = [];
  private queue: Array<{ job: CompressJob; p: Pending }> = [];
  private running = new Map<Worker, Pending>();

  constructor(readonly size = Math.max(1, os.availableParallelism())) {}

  run(job: CompressJob): Promise<Uint8Array[]> {
    return new Promise((resolve, reject) => {
      this.queue.push({ job, p: { resolve, reject } });
      this.pump();
    });
  }

  /** Number of jobs queued or running; writers use it to bound memory. */
  get pending(): number { return this.queue.length + this.running.size; }

  private spawn(): Worker {
    // Node 20 does not pass tsx's loader hooks to workers: register them in the worker first.
    const w = workerUrl.pathname.endsWith('.ts')
      ? new Worker(`import('tsx/esm/api').then((m) => { m.register(); return import(${JSON.stringify(workerUrl.href)}); })`, { eval: true })
      : new Worker(workerUrl);
    w.unref();
    w.on('message', (msg: { ok: true; chunks: Uint8Array[] } | { ok: false; error: string }) => {
      const p = this.running.get(w)!;
      this.running.delete(w);
      this.idle.push(w);
      if (msg.ok) p.resolve(msg.chunks.map((c) => new Uint8Array(c.buffer, c.byteOffset, c.byteLength)));
      else p.reject(new Error(msg.error));
      this.pump();
    });
    w.on('error', (err) => {
      const p = this.running.get(w);
      this.running.delete(w);
      this.workers = this.workers.filter((x) => x !== w);
      p?.reject(err);
      this.pump();
    });
    this.workers.push(w);
    return w;
  }

  private pump(): void {
    while (this.queue.length > 0) {
      let w = this.idle.pop();
      if (!w) {
        if (this.workers.length >= this.size) return;
        w = this.spawn();
      }
      const { job, p } = this.queue.shift()!;
      this.running.set(w, p);
      w.ref();
      w.postMessage(job);
    }
    if (this.running.size === 0) for (const w of this.idle) w.unref();
  }

  async close(): Promise<void> {
    const ws = this.workers;
    this.workers = [];
    this.idle = [];
    await Promise.all(ws.map((w) => w.terminate()));
  }
}

let shared: CompressPool | undefined;
/** The process-wide pool (one worker per core). */
export function compressPool(): CompressPool {
  shared ??= new CompressPool();
  return shared;
}
