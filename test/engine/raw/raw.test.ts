import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { raw } from '../../../src/engine/formats/raw/index.js';
import { openImage } from '../../../src/engine/block/open.js';
import { FileSink } from '../../../src/engine/io/file.js';
import { StreamSink } from '../../../src/engine/io/stdout.js';
import { nativeAddon } from '../../../src/engine/io/native.js';
import type { Extent } from '../../../src/engine/block/device.js';
import type { ImgportError } from '../../../src/engine/errors.js';
import { tmpDir, pattern, sparseFile } from '../ops/helpers.js';

async function collect(it: AsyncIterable<Extent>): Promise<Extent[]> {
  const out: Extent[] = [];
  for await (const e of it) out.push(e);
  return out;
}

test('raw probes as the fallback and reads guest bytes as they are', async () => {
  assert.equal(raw.probe({ name: 'x', size: 10, head: new Uint8Array(10), tail: new Uint8Array(10) }), 1);
  const t = tmpDir();
  try {
    const f = path.join(t.dir, 'a.img');
    const data = pattern(5000, 3);
    sparseFile(f, 3 << 20, [[1 << 20, data]]);
    const dev = await openImage(f, { format: 'raw' });
    assert.equal(dev.virtualSize, 3 << 20);
    const buf = Buffer.alloc(6000);
    await dev.read(buf, (1 << 20) - 500);
    assert.ok(buf.subarray(0, 500).every((b) => b === 0));
    assert.deepEqual(buf.subarray(500, 5500), data);
    const ext = await collect(dev.extents(0, dev.virtualSize));
    // Contiguous, covering, in order.
    let pos = 0;
    for (const e of ext) { assert.equal(e.offset, pos); assert.equal(e.hostOffset, e.offset); pos += e.length; }
    assert.equal(pos, dev.virtualSize);
    if (nativeAddon()) {
      assert.equal(ext[0]!.kind, 'zero');
      const d = ext.find((e) => e.kind === 'data')!;
      assert.ok(d.offset <= 1 << 20 && d.offset + d.length >= (1 << 20) + 5000);
    } else {
      assert.deepEqual(ext.map((e) => e.kind), ['data']);
    }
    await dev.close();
  } finally { t.cleanup(); }
});

test('raw writer leaves zero runs as holes and sets the size', async () => {
  const t = tmpDir();
  try {
    const f = path.join(t.dir, 'out.img');
    const sink = await FileSink.create(f);
    const w = await raw.create!({ sink, virtualSize: 100 << 20, options: {} });
    await w.writeData(50 << 20, Buffer.alloc(4096, 9));
    await w.writeZero!(60 << 20, 1 << 20);
    await w.finish();
    await sink.close();
    const st = fs.statSync(f);
    assert.equal(st.size, 100 << 20);
    assert.ok(st.blocks * 512 < 1 << 20, `allocated ${st.blocks * 512}`);
    const b = Buffer.alloc(4096);
    const fd = fs.openSync(f, 'r');
    fs.readSync(fd, b, 0, 4096, 50 << 20);
    fs.closeSync(fd);
    assert.ok(b.every((x) => x === 9));
  } finally { t.cleanup(); }
});

test('raw preallocation=full allocates everything; falloc reserves it', async () => {
  const t = tmpDir();
  try {
    for (const mode of ['full', ...(nativeAddon() ? ['falloc'] : [])]) {
      const f = path.join(t.dir, `${mode}.img`);
      const sink = await FileSink.create(f);
      const w = await raw.create!({ sink, virtualSize: 4 << 20, options: { preallocation: mode } });
      await w.writeData(1 << 20, Buffer.alloc(512, 1));
      await w.finish();
      await sink.close();
      const st = fs.statSync(f);
      assert.equal(st.size, 4 << 20);
      assert.ok(st.blocks * 512 >= 4 << 20, `${mode}: allocated ${st.blocks * 512}`);
    }
  } finally { t.cleanup(); }
});

test('raw writer on a stream writes the holes as zeros, in order', async () => {
  const out = new PassThrough();
  const chunks: Buffer[] = [];
  out.on('data', (c: Buffer) => chunks.push(c));
  const sink = new StreamSink('-', out);
  const w = await raw.create!({ sink, virtualSize: 3 << 20, options: {} });
  await w.writeData(1 << 20, Buffer.alloc(10, 5));
  await w.finish();
  await sink.close();
  const all = Buffer.concat(chunks);
  assert.equal(all.length, 3 << 20);
  assert.equal(all[(1 << 20) + 9], 5);
  assert.equal(all[(1 << 20) + 10], 0);
  assert.equal(all[0], 0);
});

test('raw refuses unknown options, backing files, compression, and shrinking without --shrink', async () => {
  const t = tmpDir();
  try {
    const f = path.join(t.dir, 'x.img');
    const sink = await FileSink.create(f);
    await assert.rejects(raw.create!({ sink, virtualSize: 1, options: { cluster_size: '4096' } }), (e: ImgportError) => e.code === 'INVALID_ARGUMENT');
    await assert.rejects(raw.create!({ sink, virtualSize: 1, options: {}, backingFile: 'b' }), (e: ImgportError) => e.code === 'UNSUPPORTED');
    await assert.rejects(raw.create!({ sink, virtualSize: 1, options: {}, compress: true }), (e: ImgportError) => e.code === 'UNSUPPORTED');
    await sink.close();
    sparseFile(f, 1 << 20, []);
    const dev = await openImage(f, { format: 'raw', writable: true });
    await assert.rejects(dev.resize!(4096, { shrink: false }), /--shrink/);
    await dev.resize!(4096, { shrink: true });
    await dev.close();
    assert.equal(fs.statSync(f).size, 4096);
    const ro = await openImage(f, { format: 'raw' });
    await assert.rejects(ro.write!(Buffer.alloc(1), 0), (e: ImgportError) => e.code === 'UNSUPPORTED');
    await ro.close();
  } finally { t.cleanup(); }
});
