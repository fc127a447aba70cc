// The copy pipeline against in-memory devices and mock writers: order, flattening,
// sparse detection, bounded reads in flight, and failure handling.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import type { BlockDevice, ImageWriter } from '../../../src/engine/block/device.js';
import { copyPlan, chainMap } from '../../../src/engine/block/chain.js';
import { copyToWriter, convertDevice } from '../../../src/engine/convert/index.js';
import { StreamSink } from '../../../src/engine/io/stdout.js';
import type { ImgportError } from '../../../src/engine/errors.js';
import { MemDevice, pattern } from '../ops/helpers.js';

const MiB = 1 << 20;

/** base ← mid ← top, each overriding part of the one below; returns the expected guest bytes too. */
function chain3(size = 24 * MiB): { top: BlockDevice; expected: Buffer } {
  const a = pattern(6 * MiB, 1), b = pattern(3 * MiB, 2), c = pattern(MiB + 123, 3);
  const base = new MemDevice('base', size, null, [[0, a], [12 * MiB, Buffer.alloc(2 * MiB)]]);
  const mid = new MemDevice('mid', size, base, [[2 * MiB, b], [8 * MiB, 1 * MiB]]);
  // The top's zero run masks part of mid's data; its data straddles a chunk boundary.
  const top = new MemDevice('top', size, mid, [[3 * MiB, MiB], [8 * MiB - 100, c]]);
  const expected = Buffer.alloc(size);
  a.copy(expected, 0);
  b.copy(expected, 2 * MiB);
  expected.fill(0, 3 * MiB, 4 * MiB);
  expected.fill(0, 8 * MiB, 9 * MiB);
  c.copy(expected, 8 * MiB - 100);
  return { top, expected };
}

class RecordingWriter implements ImageWriter {
  out: Buffer;
  calls: Array<[string, number, number]> = [];
  aborted = false;
  finished = false;
  private last = -1;
  constructor(size: number, private withZero = true) { this.out = Buffer.alloc(size, 0xee); }
  async writeData(offset: number, data: Uint8Array): Promise<void> {
    assert.ok(offset >= this.last, `out of order: ${offset} after ${this.last}`);
    this.last = offset + data.length;
    this.out.set(data, offset);
    this.calls.push(['data', offset, data.length]);
  }
  writeZero? = async (offset: number, length: number): Promise<void> => {
    this.out.fill(0, offset, offset + length);
    this.calls.push(['zero', offset, length]);
  };
  async finish(): Promise<void> { this.finished = true; }
  async abort(): Promise<void> { this.aborted = true; }
  strip(): this { if (!this.withZero) this.writeZero = undefined; return this; }
}

test('chainMap reports each run with the layer it comes from', async () => {
  const { top } = chain3();
  const runs = [];
  for await (const r of chainMap(top)) runs.push([r.offset, r.length, r.depth, r.kind, r.present, r.device.name]);
  assert.deepEqual(runs.slice(0, 4), [
    [0, 2 * MiB, 2, 'data', true, 'base'],
    [2 * MiB, MiB, 1, 'data', true, 'mid'],
    [3 * MiB, MiB, 0, 'zero', true, 'top'],
    [4 * MiB, MiB, 1, 'data', true, 'mid'],
  ]);
  // Unallocated everywhere: zero, not present, at the bottom's depth.
  const last = runs[runs.length - 1]!;
  assert.deepEqual(last.slice(2), [2, 'zero', false, 'base']);
  let pos = 0;
  for (const r of runs) { assert.equal(r[0], pos); pos += r[1] as number; }
  assert.equal(pos, top.virtualSize);
});

test('a depth-3 chain is flattened: every byte equals the guest view, zeros not written', async () => {
  const { top, expected } = chain3();
  const plan = await copyPlan(top);
  assert.ok(plan.every((e) => e.kind !== 'unallocated'));
  const w = new RecordingWriter(top.virtualSize);
  w.out.fill(0); // a fresh target reads zeros where nothing is written
  const { dataBytes } = await copyToWriter(top, w, plan, { chunkSize: MiB });
  assert.ok(w.out.equals(expected));
  // base's explicit zero region (12..14 MiB) holds zero bytes stored as data: skipped by -S.
  assert.ok(!w.calls.some(([k, o]) => k === 'data' && o >= 12 * MiB && o < 14 * MiB));
  assert.ok(dataBytes < 12 * MiB, `dataBytes ${dataBytes}`);
});

test('topOnly (-B) copies only the top layer and writes its zeros explicitly', async () => {
  const { top } = chain3();
  const plan = await copyPlan(top, { topOnly: true });
  assert.deepEqual(plan.map((e) => e.kind), ['unallocated', 'zero', 'unallocated', 'data', 'unallocated']);
  const w = new RecordingWriter(top.virtualSize);
  await copyToWriter(top, w, plan, { explicitZeros: true, chunkSize: MiB });
  assert.ok(w.calls.some(([k, o, l]) => k === 'zero' && o === 3 * MiB && l === MiB));
  // Untouched where the top layer is unallocated (left to the new backing file).
  assert.equal(w.out[0], 0xee);
  assert.equal(w.out[5 * MiB], 0xee);
});

test('-S 0 writes every byte, holes included, as data', async () => {
  const { top, expected } = chain3(10 * MiB);
  const w = new RecordingWriter(top.virtualSize);
  const { dataBytes } = await copyToWriter(top, w, await copyPlan(top), { sparseSize: 0, chunkSize: MiB });
  assert.equal(dataBytes, top.virtualSize);
  assert.ok(w.out.equals(expected.subarray(0, 10 * MiB)));
  assert.ok(w.calls.every(([k]) => k === 'data'));
});

test('zero blocks inside data are found at -S granularity (aligned) and skipped', async () => {
  const data = pattern(4 * MiB, 9);
  data.fill(0, 65536, 65536 + 8192);       // two whole 4 KiB blocks: skipped
  data.fill(0, 200000, 200000 + 6000);     // not a whole aligned 4 KiB... contains one aligned block
  const dev = new MemDevice('d', 4 * MiB, null, [[0, data]]);
  const w = new RecordingWriter(dev.virtualSize);
  w.out.fill(0);
  await copyToWriter(dev, w, await copyPlan(dev), { sparseSize: 4096 });
  assert.ok(w.out.equals(data));
  const covered = (o: number) => w.calls.some(([k, s, l]) => k === 'data' && s <= o && o < s + l);
  assert.equal(covered(65536), false);
  assert.equal(covered(65536 + 8191), false);
  assert.equal(covered(200000), true); // unaligned start of the zero run stays data
  assert.equal(covered(200704), false); // 200704 = 49 × 4096, a whole zero block
});

test('reads in flight are bounded and sized by the chunk', async () => {
  let current = 0, peak = 0, biggest = 0;
  const inner = new MemDevice('big', 64 * MiB, null, [[0, pattern(64 * MiB, 5)]]);
  const dev: BlockDevice = Object.assign(Object.create(Object.getPrototypeOf(inner)), inner, {
    async read(buf: Uint8Array, offset: number) {
      current++; peak = Math.max(peak, current); biggest = Math.max(biggest, buf.length);
      await new Promise((r) => setTimeout(r, 2));
      await inner.read(buf, offset);
      current--;
    },
  });
  const w = new RecordingWriter(dev.virtualSize);
  await copyToWriter(dev, w, await copyPlan(dev), { chunkSize: 2 * MiB, inFlight: 3 });
  assert.ok(peak <= 3 && peak >= 2, `peak ${peak}`);
  assert.equal(biggest, 2 * MiB);
});

test('a read error mid-stream aborts the writer and surfaces the error naming the file', async () => {
  const dev = new MemDevice('bad.img', 32 * MiB, null, [[0, pattern(32 * MiB, 7)]], 20 * MiB);
  const out = new PassThrough();
  out.resume();
  const sink = new StreamSink('-', out);
  await assert.rejects(convertDevice(dev, sink, { format: 'raw' }), (e: ImgportError) => e.code === 'IO_ERROR' && e.file === 'bad.img');
});

test('writer without writeZero gets zero bytes as data when zeros must be explicit', async () => {
  const dev = new MemDevice('z', 2 * MiB, null, [[0, MiB]]);
  const w = new RecordingWriter(dev.virtualSize, false).strip();
  await copyToWriter(dev, w, await copyPlan(dev, { topOnly: true }), { explicitZeros: true });
  assert.ok(w.out.subarray(0, MiB).every((b) => b === 0));
  assert.equal(w.out[MiB], 0xee);
});

test('convertDevice to a stream writes the whole flattened image in order', async () => {
  const { top, expected } = chain3();
  const out = new PassThrough();
  const chunks: Buffer[] = [];
  out.on('data', (c: Buffer) => chunks.push(c));
  const r = await convertDevice(top, new StreamSink('-', out), { format: 'raw' });
  assert.equal(r.virtualSize, top.virtualSize);
  assert.ok(Buffer.concat(chunks).equals(expected));
});
