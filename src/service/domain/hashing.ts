// Hashing on worker threads: one thread per algorithm (md5 for `checksum`, the
// configured os_hash_algo for `os_hash_value`), so an upload's two hashes run on two
// cores while the main thread moves bytes. Data is shared, not copied: the uploader
// fills slots of a SharedArrayBuffer and posts (offset, length); each worker hashes the
// view and acknowledges, which frees the slot (the bound on in-flight bytes).
import { Worker } from 'node:worker_threads';

// Inline so it runs the same from dist/ and under tsx.
const WORKER_SOURCE = `
const { parentPort } = require('node:worker_threads');
const { createHash } = require('node:crypto');
const sessions = new Map();
parentPort.on('message', (m) => {
  switch (m.t) {
    case 'start': sessions.set(m.id, { h: createHash(m.algo), buf: new Uint8Array(m.sab) }); break;
    case 'data': { const s = sessions.get(m.id); if (s) s.h.update(s.buf.subarray(m.off, m.off + m.len)); parentPort.postMessage({ t: 'ack', id: m.id, slot: m.slot }); break; }
    case 'end': { const s = sessions.get(m.id); sessions.delete(m.id); parentPort.postMessage({ t: 'digest', id: m.id, hex: s ? s.h.digest('hex') : null }); break; }
    case 'abort': sessions.delete(m.id); break;
  }
});
`;

type Msg = { t: 'ack'; id: number; slot: number } | { t: 'digest'; id: number; hex: string };

interface Listener { ack(slot: number): void; digest(hex: string): void; fail(err: Error): void }

/** One worker serving many concurrent hash sessions of one algorithm; respawned if it dies. */
class HashWorker {
  private worker!: Worker;
  private readonly sessions = new Map<number, Listener>();
  private closing = false;
  constructor(readonly algo: string) { this.spawn(); }
  private spawn(): void {
    const w = new Worker(WORKER_SOURCE, { eval: true });
    w.unref();
    w.on('message', (m: Msg) => {
      const l = this.sessions.get(m.id);
      if (!l) return;
      if (m.t === 'ack') l.ack(m.slot);
      else { this.sessions.delete(m.id); l.digest(m.hex); }
    });
    const died = (err: Error) => {
      // Sessions on the dead thread cannot finish; fail them and start a fresh thread.
      for (const l of this.sessions.values()) l.fail(err);
      this.sessions.clear();
      if (!this.closing) this.spawn();
    };
    w.on('error', died);
    w.on('exit', (code) => { if (!this.closing && this.worker === w) died(new Error(`${this.algo} hash worker exited (${code})`)); });
    this.worker = w;
  }
  start(id: number, sab: SharedArrayBuffer, l: Listener): void { this.sessions.set(id, l); this.worker.postMessage({ t: 'start', id, algo: this.algo, sab }); }
  data(id: number, slot: number, off: number, len: number): void { this.worker.postMessage({ t: 'data', id, slot, off, len }); }
  end(id: number): void { this.worker.postMessage({ t: 'end', id }); }
  abort(id: number): void { this.sessions.delete(id); this.worker.postMessage({ t: 'abort', id }); }
  terminate(): Promise<number> { this.closing = true; return this.worker.terminate(); }
}

export class HashPool {
  private readonly workers: HashWorker[];
  private nextId = 1;
  constructor(readonly algos: string[]) {
    this.workers = algos.map((a) => new HashWorker(a));
  }

  /** A session over `sab`; `onAck(slot)` is called once per worker per data message. */
  session(sab: SharedArrayBuffer, onAck: (slot: number) => void, onFail: (err: Error) => void): HashSession {
    const id = this.nextId++;
    return new HashSession(id, this.workers, sab, onAck, onFail);
  }

  async close(): Promise<void> { await Promise.all(this.workers.map((w) => w.terminate())); }
}

export class HashSession {
  private readonly digests: Promise<string>[];
  private failed: Error | null = null;
  private ended = false;
  constructor(private readonly id: number, private readonly workers: HashWorker[], sab: SharedArrayBuffer, onAck: (slot: number) => void, onFail: (err: Error) => void) {
    this.digests = workers.map((w) => new Promise<string>((resolve, reject) => {
      w.start(id, sab, {
        ack: onAck,
        digest: resolve,
        fail: (e) => { this.failed = e; reject(e); onFail(e); },
      });
    }));
    for (const d of this.digests) d.catch(() => {});
  }
  get error(): Error | null { return this.failed; }
  get ways(): number { return this.workers.length; }
  push(slot: number, off: number, len: number): void { for (const w of this.workers) w.data(this.id, slot, off, len); }
  /** Hex digests in the pool's algorithm order. */
  finish(): Promise<string[]> { this.ended = true; for (const w of this.workers) w.end(this.id); return Promise.all(this.digests); }
  abort(): void { if (this.ended) return; this.ended = true; for (const w of this.workers) w.abort(this.id); }
}
