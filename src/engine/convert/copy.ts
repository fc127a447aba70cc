// The copy loop: reads the data runs of a plan in large aligned chunks with several
// reads in flight (buffers from a small fixed pool), finds zero blocks with memcmp,
// and hands the rest to the writer in guest order. Memory: inFlight × chunkSize.
import type { BlockDevice, Extent, ImageWriter } from '../block/device.js';
import { InvalidArgument } from '../errors.js';
import { scanZeroRuns, zeroBuffer } from '../io/zero.js';

export interface CopyOptions {
  /** -S: zero runs of at least this many bytes (aligned) inside data are skipped; 0 writes everything, holes included. Default 4096. */
  sparseSize?: number;
  /**
   * The target does not read zeros where nothing is written (it has a backing file, or
   * it existed before: -n), so zero runs must be written explicitly.
   */
  explicitZeros?: boolean;
  /** Bytes per read (default 8 MiB). */
  chunkSize?: number;
  /** Reads in flight (default 3: with libuv's 4 I/O threads, one stays free for the writer). */
  inFlight?: number;
  onProgress?: (done: number, total: number) => void;
}

interface Task { offset: number; length: number; zero: boolean; leave: boolean }

function* tasks(plan: Extent[], chunk: number): Generator<Task> {
  for (const e of plan) {
    if (e.kind !== 'data') {
      yield { offset: e.offset, length: e.length, zero: e.kind === 'zero', leave: e.kind === 'unallocated' };
      continue;
    }
    // Chunk boundaries at multiples of `chunk` keep reads aligned in the source.
    let pos = e.offset;
    const end = e.offset + e.length;
    while (pos < end) {
      const next = Math.min(end, (Math.floor(pos / chunk) + 1) * chunk);
      yield { offset: pos, length: next - pos, zero: false, leave: false };
      pos = next;
    }
  }
}

type Settled = { ok: true } | { ok: false; err: unknown };

/** Copies `src` through `writer` following `plan`; returns the bytes handed over as data. Does not call finish(). */
export async function copyToWriter(src: BlockDevice, writer: ImageWriter, plan: Extent[], opts: CopyOptions = {}): Promise<{ dataBytes: number }> {
  const sparse = opts.sparseSize ?? 4096;
  if (!Number.isInteger(sparse) || sparse < 0) throw new InvalidArgument(`invalid sparse size ${sparse}`);
  const chunk = opts.chunkSize ?? 8 << 20;
  const depth = Math.max(1, opts.inFlight ?? 3);
  const total = src.virtualSize;
  const pool: Buffer[] = [];
  let done = 0;
  let dataBytes = 0;

  const writeZeros = async (offset: number, length: number) => {
    if (writer.writeZero) { await writer.writeZero(offset, length); return; }
    const z = zeroBuffer();
    for (let p = 0; p < length; p += z.length) await writer.writeData(offset + p, z.subarray(0, Math.min(z.length, length - p)));
  };
  const progress = (n: number) => {
    done += n;
    opts.onProgress?.(done, total);
  };

  const it = tasks(plan, chunk);
  const inflight: Array<{ task: Task; buf: Buffer | null; full: Buffer | null; settled: Promise<Settled> }> = [];
  const startNext = (): boolean => {
    const r = it.next();
    if (r.done) return false;
    const task = r.value;
    if (task.zero || task.leave || task.length === 0) {
      inflight.push({ task, buf: null, full: null, settled: Promise.resolve({ ok: true }) });
      return true;
    }
    const full = pool.pop() ?? Buffer.allocUnsafeSlow(chunk);
    const buf = full.subarray(0, task.length);
    const settled = src.read(buf, task.offset).then((): Settled => ({ ok: true }), (err): Settled => ({ ok: false, err }));
    inflight.push({ task, buf, full, settled });
    return true;
  };

  try {
    let more = true;
    while (more && inflight.length < depth) more = startNext();
    while (inflight.length > 0) {
      const head = inflight[0]!;
      const res = await head.settled;
      if (!res.ok) throw res.err;
      const { task, buf, full } = head;
      if (task.zero || !buf) {
        // A hole or explicit zeros in the source; unallocated (only with topOnly plans) is left to the target's backing.
        if (task.zero) {
          if (sparse === 0) { await writeZerosAsData(writer, task.offset, task.length); dataBytes += task.length; }
          else if (opts.explicitZeros) await writeZeros(task.offset, task.length);
        }
      } else if (sparse === 0) {
        await writer.writeData(task.offset, buf);
        dataBytes += buf.length;
      } else {
        // Collect runs first: the writer is async, scanZeroRuns is not.
        const runs: Array<[number, number, boolean]> = [];
        scanZeroRuns(buf, task.offset, sparse, (s, e, z) => { runs.push([s, e, z]); });
        for (const [s, e, z] of runs) {
          if (!z) {
            await writer.writeData(task.offset + s, buf.subarray(s, e));
            dataBytes += e - s;
          } else if (opts.explicitZeros) {
            await writeZeros(task.offset + s, e - s);
          }
        }
      }
      inflight.shift();
      if (full) pool.push(full);
      progress(task.length);
      if (more) more = startNext();
    }
  } finally {
    // Never return while reads still fill buffers (the caller may close the source).
    await Promise.all(inflight.map((f) => f.settled));
  }
  return { dataBytes };
}

async function writeZerosAsData(writer: ImageWriter, offset: number, length: number): Promise<void> {
  const z = zeroBuffer();
  for (let p = 0; p < length; p += z.length) await writer.writeData(offset + p, z.subarray(0, Math.min(z.length, length - p)));
}
