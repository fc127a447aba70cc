import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { PassThrough, Writable } from 'node:stream';
import { StreamSink } from '../../../src/engine/io/stdout.js';
import { FileSource, FileSink } from '../../../src/engine/io/file.js';
import { nativeAddon, seekDataRuns } from '../../../src/engine/io/native.js';
import { ImgportError } from '../../../src/engine/errors.js';
import { tmpDir } from '../ops/helpers.js';

test('StreamSink writes in order and refuses seeks', async () => {
  const out = new PassThrough();
  const chunks: Buffer[] = [];
  out.on('data', (c: Buffer) => chunks.push(c));
  const sink = new StreamSink('pipe', out);
  const buf = Buffer.from('abcd');
  await sink.write(buf, 0);
  buf.fill(0x78); // the sink must have copied: callers reuse buffers
  await sink.write(Buffer.from('ef'), 4);
  await assert.rejects(sink.write(Buffer.from('x'), 100), (e: ImgportError) => e.code === 'INVALID_ARGUMENT' && e.file === 'pipe');
  await sink.close();
  assert.equal(Buffer.concat(chunks).toString(), 'abcdef');
});

test('StreamSink reports a broken pipe as an IoError naming the output', async () => {
  const out = new Writable({ highWaterMark: 1, write(_c, _e, cb) { cb(Object.assign(new Error('EPIPE'), { code: 'EPIPE' })); } });
  const sink = new StreamSink('-', out);
  await assert.rejects(async () => {
    for (let i = 0; i < 4; i++) await sink.write(Buffer.alloc(16), i * 16);
  }, (e: ImgportError) => e.code === 'IO_ERROR' && e.file === '-' && /broken pipe|closed/.test(e.message));
});

test('FileSource.dataRuns reports holes via the native addon (or null without it)', async () => {
  const t = tmpDir();
  try {
    const f = path.join(t.dir, 'sparse');
    const fd = fs.openSync(f, 'w');
    fs.ftruncateSync(fd, 64 << 20);
    fs.writeSync(fd, Buffer.alloc(1 << 20, 1), 0, 1 << 20, 8 << 20);
    fs.closeSync(fd);
    const src = await FileSource.open(f);
    const runs = await src.dataRuns(0, src.size);
    await src.close();
    if (!nativeAddon()) { assert.equal(runs, null); return; }
    assert.ok(runs);
    assert.equal(runs.length, 1);
    assert.ok(runs[0]!.offset <= 8 << 20 && runs[0]!.offset + runs[0]!.length >= 9 << 20);
    // Range clipping.
    const fd2 = fs.openSync(f, 'r');
    assert.deepEqual(seekDataRuns(fd2, 0, 4 << 20), []);
    fs.closeSync(fd2);
  } finally { t.cleanup(); }
});

test('FileSink.create on a missing directory names the file', async () => {
  await assert.rejects(FileSink.create('/nonexistent-imgport-dir/x.img'), (e: ImgportError) => e.file === '/nonexistent-imgport-dir/x.img' && /cannot create/.test(e.message));
});
