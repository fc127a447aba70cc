// The VHD, VDI and VHDX writers fed directly (not through convert): data in odd,
// unaligned pieces with gaps and explicit zero pieces, then checked with qemu-img.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { FileSink } from '../../../../src/engine/io/file.js';
import { formatByName, openImage } from '../../../../src/engine/block/open.js';
import { ImgportError } from '../../../../src/engine/errors.js';
import { qemuCheck, qemuCompare, qemuInfo, tmpDir } from './qemu-helpers.js';

const MiB = 1024 * 1024;

function rng(seed: number) {
  let x = seed >>> 0;
  return () => { x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0; return x / 2 ** 32; };
}

const cases: Array<[string, Record<string, string>]> = [
  ['vpc', {}], ['vpc', { subformat: 'fixed', force_size: 'on' }],
  ['vdi', {}], ['vdi', { static: 'on' }],
  ['vhdx', { block_size: '1M' }], ['vhdx', { subformat: 'fixed', block_size: '2M' }],
];

test('writers: unaligned pieces, gaps and zero pieces in increasing order give the right image', async () => {
  const dir = tmpDir();
  try {
    const size = 21 * MiB + 512 * 7;
    const rand = rng(42);
    // The expected guest content and the pieces that produce it.
    const expect = Buffer.alloc(size);
    const pieces: Array<[number, Buffer]> = [];
    let off = 0;
    while (off < size) {
      off += Math.floor(rand() * 3 * MiB); // a gap (left unwritten)
      if (off >= size) break;
      const len = Math.min(size - off, 1 + Math.floor(rand() * 2.5 * MiB));
      const zero = rand() < 0.25;
      const b = Buffer.alloc(len, zero ? 0 : 1 + Math.floor(rand() * 250));
      if (!zero) b[0] = 0xee;
      pieces.push([off, b]);
      b.copy(expect, off);
      off += len;
    }
    const ref = path.join(dir, 'ref.raw');
    fs.writeFileSync(ref, expect);
    for (const [fmt, options] of cases) {
      const out = path.join(dir, `out-${fmt}-${Object.values(options).join('-')}`);
      const sink = await FileSink.create(out);
      const w = await formatByName(fmt).create!({ sink, virtualSize: size, options });
      for (const [o, b] of pieces) await w.writeData(o, b);
      await w.finish();
      await sink.close();
      const info = qemuInfo(out, fmt);
      assert.equal(info.format, fmt);
      assert.ok((info['virtual-size'] as number) >= size);
      assert.equal(qemuCompare(ref, 'raw', out, fmt).status, 0, `${fmt} ${JSON.stringify(options)} equals the data`);
      if (fmt !== 'vpc') assert.equal(qemuCheck(out, fmt).status, 0, `${fmt} check`);
      const dev = await openImage(out, { format: fmt });
      try {
        const buf = Buffer.alloc(size);
        await dev.read(buf, 0);
        assert.ok(buf.equals(expect), `${fmt} reads back`);
      } finally {
        await dev.close();
      }
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('writers: out-of-order data is refused; an aborted image is not an image', async () => {
  const dir = tmpDir();
  try {
    for (const [fmt, options] of cases) {
      const out = path.join(dir, `a-${fmt}`);
      const sink = await FileSink.create(out);
      const w = await formatByName(fmt).create!({ sink, virtualSize: 8 * MiB, options });
      await w.writeData(4 * MiB, Buffer.alloc(4096, 1));
      if (options.subformat !== 'fixed' && options.static !== 'on') {
        await assert.rejects(w.writeData(0, Buffer.alloc(512, 1)), (e: unknown) => e instanceof ImgportError && e.code === 'INVALID_ARGUMENT');
      }
      await w.abort();
      await sink.close();
      await assert.rejects(openImage(out, { format: fmt }), (e: unknown) => e instanceof ImgportError, `${fmt} aborted`);
    }
    // Options are validated.
    const sink = await FileSink.create(path.join(dir, 'x'));
    await assert.rejects(formatByName('vpc').create!({ sink, virtualSize: MiB, options: { subformat: 'weird' } }), (e: unknown) => e instanceof ImgportError && e.code === 'INVALID_ARGUMENT');
    await assert.rejects(formatByName('vhdx').create!({ sink, virtualSize: MiB, options: { block_size: '3M' } }), (e: unknown) => e instanceof ImgportError && e.code === 'INVALID_ARGUMENT');
    await assert.rejects(formatByName('vpc').create!({ sink, virtualSize: 3000 * 1024 * MiB, options: {} }), (e: unknown) => e instanceof ImgportError && e.code === 'INVALID_ARGUMENT');
    await sink.close();
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('writers: measure predicts the size convert writes', async () => {
  const { measure } = await import('../../../../src/engine/ops/measure.js');
  const { convertImage } = await import('../../../../src/engine/convert/index.js');
  const dir = tmpDir();
  try {
    const src = path.join(dir, 'm.raw');
    const fd = fs.openSync(src, 'w');
    fs.ftruncateSync(fd, 200 * MiB);
    for (const off of [0, 5 * MiB, 17 * MiB + 4096, 100 * MiB, 150 * MiB + 12345]) fs.writeSync(fd, Buffer.alloc(70000, 0x78), 0, 70000, off);
    fs.closeSync(fd);
    for (const [fmt, options] of [...cases, ['vhdx', {}] as [string, Record<string, string>]]) {
      const out = path.join(dir, `m-${fmt}`);
      const m = await measure({ targetFormat: fmt, options: { ...options }, source: src, sourceFormat: 'raw' });
      await convertImage({ source: src, sourceFormat: 'raw', target: out, targetFormat: fmt, options: { ...options } });
      assert.equal(m.required, fs.statSync(out).size, `${fmt} ${JSON.stringify(options)}`);
      fs.rmSync(out);
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('writers: fixed VHD, static VDI and fixed VHDX stream to a pipe; dynamic ones refuse it', async () => {
  const { StreamSink } = await import('../../../../src/engine/io/stdout.js');
  const { convertDevice } = await import('../../../../src/engine/convert/index.js');
  const dir = tmpDir();
  try {
    const src = path.join(dir, 's.raw');
    const fd = fs.openSync(src, 'w');
    fs.ftruncateSync(fd, 9 * MiB + 4096);
    for (const off of [0, 3 * MiB + 512, 9 * MiB]) fs.writeSync(fd, Buffer.alloc(70000, 0x78), 0, 70000, off);
    fs.closeSync(fd);
    const dev = await openImage(src, { format: 'raw' });
    try {
      for (const [fmt, options] of [['vpc', { subformat: 'fixed', force_size: 'on' }], ['vdi', { static: 'on' }], ['vhdx', { subformat: 'fixed', block_size: '1M' }]] as const) {
        const out = path.join(dir, `stream-${fmt}`);
        const ws = fs.createWriteStream(out);
        const sink = new StreamSink(out, ws);
        await convertDevice(dev, sink, { format: fmt, options: { ...options } });
        await sink.close();
        assert.equal(qemuCompare(src, 'raw', out, fmt).status, 0, `${fmt} streamed equals the source`);
        if (fmt !== 'vpc') assert.equal(qemuCheck(out, fmt).status, 0, `${fmt} check`);
      }
      for (const fmt of ['vpc', 'vdi', 'vhdx']) {
        const out = path.join(dir, `dyn-${fmt}`);
        const sink = new StreamSink(out, fs.createWriteStream(out));
        await assert.rejects(convertDevice(dev, sink, { format: fmt }), (e: unknown) => e instanceof ImgportError && e.code === 'UNSUPPORTED');
        await sink.close();
      }
    } finally {
      await dev.close();
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('in-place writes (convert -n, guest edits): dynamic and fixed VHD, VDI stay valid for qemu-img', async () => {
  const dir = tmpDir();
  try {
    for (const [fmt, opts] of [['vpc', 'subformat=dynamic'], ['vpc', 'subformat=fixed'], ['vdi', 'static=off'], ['vdi', 'static=on']] as const) {
      const f = path.join(dir, `w-${fmt}-${opts.split('=')[1]}`);
      const { execFileSync } = await import('node:child_process');
      execFileSync('qemu-img', ['create', '-q', '-f', fmt, '-o', opts, f, '12M']);
      execFileSync('qemu-io', ['-f', fmt, '-c', 'write -P 0x11 0 1M', f]);
      const dev = await openImage(f, { format: fmt, writable: true });
      const size = dev.virtualSize;
      const ref = path.join(dir, `ref-${fmt}.raw`);
      execFileSync('qemu-img', ['convert', '-f', fmt, '-O', 'raw', f, ref]);
      const expect = fs.readFileSync(ref);
      const writes: Array<[number, number, number]> = [[100, 5000, 0x22], [3 * MiB - 7, 2 * MiB + 99, 0x33], [size - 513, 513, 0x44], [9 * MiB, 4096, 0]];
      try {
        assert.ok(dev.write, `${fmt} writable`);
        for (const [o, l, v] of writes) {
          await dev.write!(Buffer.alloc(l, v), o);
          expect.fill(v, o, o + l);
        }
        await dev.flush?.();
        const back = Buffer.alloc(size);
        await dev.read(back, 0);
        assert.ok(back.equals(expect), `${fmt} ${opts} reads its own writes`);
      } finally {
        await dev.close();
      }
      fs.writeFileSync(ref, expect);
      assert.equal(qemuCompare(ref, 'raw', f, fmt).status, 0, `${fmt} ${opts} after in-place writes`);
      if (fmt === 'vdi') assert.equal(qemuCheck(f, 'vdi').status, 0, qemuCheck(f, 'vdi').out);
    }
    // Opened read-only, writes are refused.
    const f = path.join(dir, 'w-vdi-off');
    const ro = await openImage(f);
    await assert.rejects(ro.write!(Buffer.alloc(512, 1), 0), (e: unknown) => e instanceof ImgportError);
    await ro.close();
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
