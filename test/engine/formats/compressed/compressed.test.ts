import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { openImage } from '../../../../src/engine/block/open.js';
import { convertImage } from '../../../../src/engine/convert/index.js';
import { setDecompressLimit, decompressLimit, gzipFormat, xzFormat, zstdFormat, bzip2Format } from '../../../../src/engine/formats/compressed/index.js';
import { ImgportError } from '../../../../src/engine/errors.js';
import { tmp, sh, qemuIo, assertSameAsQemu } from '../vmdk/util.js';

const MiB = 1 << 20;
const TOOLS: Array<[string, string[], string]> = [
  ['gz', ['gzip', '-k', '-f'], 'gzip'],
  ['xz', ['xz', '-k', '-f', '-T1'], 'xz'],
  ['zst', ['zstd', '-q', '-k', '-f'], 'zstd'],
  ['bz2', ['bzip2', '-k', '-f'], 'bzip2'],
];

function errCode(code: string, re?: RegExp) {
  return (e: unknown) => {
    assert.ok(e instanceof ImgportError, `expected an ImgportError, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    if (re) assert.match(e.message, re);
    return true;
  };
}

function compress(file: string, ext: string): string {
  const [, cmd] = TOOLS.find((t) => t[0] === ext)!;
  sh(cmd[0]!, [...cmd.slice(1), file]);
  return `${file}.${ext}`;
}

function spoolDirEmpty(dir: string): boolean {
  return !fs.existsSync(dir) || fs.readdirSync(dir).length === 0;
}

test('probes by magic only', () => {
  const probe = (h: number[]) => ({ name: 'x', size: 100, head: Uint8Array.from([...h, ...new Array(16).fill(0)]), tail: new Uint8Array(0) });
  assert.ok(gzipFormat.probe(probe([0x1f, 0x8b, 8, 0])) > 1);
  assert.ok(xzFormat.probe(probe([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0])) > 1);
  assert.ok(zstdFormat.probe(probe([0x28, 0xb5, 0x2f, 0xfd])) > 1);
  assert.ok(bzip2Format.probe(probe([0x42, 0x5a, 0x68, 0x39, 0x31, 0x41, 0x59, 0x26, 0x53, 0x59])) > 1);
  assert.equal(gzipFormat.probe(probe([0x1f, 0x8b, 7, 0])), 0);
  assert.equal(bzip2Format.probe(probe([0x42, 0x5a, 0x68, 0x39, 0, 0, 0, 0, 0, 0])), 0);
  assert.equal(zstdFormat.probe(probe([0x51, 0x46, 0x49, 0xfb])), 0);
});

test('qcow2, vmdk and raw inside gzip/xz/zstd/bzip2 read exactly like the uncompressed image', async () => {
  const t = tmp();
  process.env.IMGPORT_TMPDIR = t.p('spool');
  fs.mkdirSync(t.p('spool'));
  try {
    const q = t.p('disk.qcow2');
    sh('qemu-img', ['create', '-f', 'qcow2', q, '24M']);
    qemuIo(q, 'qcow2', ['write -P 0x5a 1M 3M', 'write -P 0x11 20M 64k']);
    const v = t.p('disk.vmdk');
    sh('qemu-img', ['convert', '-O', 'vmdk', '-o', 'subformat=streamOptimized', q, v]);
    const r = t.p('disk.raw');
    sh('qemu-img', ['convert', '-O', 'raw', q, r]);
    for (const [file, fmt] of [[q, 'qcow2'], [v, 'vmdk'], [r, 'raw']] as const) {
      for (const [ext, , codec] of TOOLS) {
        const c = compress(file, ext);
        const dev = await openImage(c);
        try {
          assert.equal(dev.format, fmt);
          assert.equal(dev.name, c);
          const d = dev.describe();
          assert.ok(d.humanLines?.some((l) => l.includes(codec)), JSON.stringify(d.humanLines));
          assert.equal(d.formatSpecific?.data['compressed-wrapper'], codec);
          // Bytes must equal qemu-img's reading of the uncompressed image.
          const rawOfInner = t.p('inner.tmp');
          fs.copyFileSync(file, rawOfInner);
          await assertSameAsQemu(dev, rawOfInner, fmt, t.dir);
          fs.rmSync(rawOfInner);
        } finally { await dev.close(); }
        fs.rmSync(c);
        assert.ok(spoolDirEmpty(t.p('spool')), 'spool file left behind');
      }
    }
  } finally { delete process.env.IMGPORT_TMPDIR; t.cleanup(); }
});

test('truncated or corrupt streams are CorruptImage, with nothing left behind', async () => {
  const t = tmp();
  process.env.IMGPORT_TMPDIR = t.p('spool');
  fs.mkdirSync(t.p('spool'));
  try {
    const r = t.p('d.raw');
    const data = Buffer.alloc(MiB);
    for (let i = 0; i < data.length; i += 4) data.writeUInt32LE((i * 2654435761) >>> 0, i);
    fs.writeFileSync(r, data);
    for (const [ext, , codec] of TOOLS) {
      const c = compress(r, ext);
      const full = fs.readFileSync(c);
      const cut = t.p(`cut.${ext}`);
      fs.writeFileSync(cut, full.subarray(0, Math.floor(full.length / 2)));
      await assert.rejects(openImage(cut), errCode('CORRUPT_IMAGE', new RegExp(codec)));
      const bad = Buffer.from(full);
      bad.fill(0x55, Math.floor(full.length / 3), Math.floor(full.length / 3) + 64);
      const garbled = t.p(`bad.${ext}`);
      fs.writeFileSync(garbled, bad);
      await assert.rejects(openImage(garbled), errCode('CORRUPT_IMAGE'));
      // convert: fails with our error, leaves no target.
      const out = t.p('out.raw');
      await assert.rejects(convertImage({ source: cut, target: out, targetFormat: 'raw' }), errCode('CORRUPT_IMAGE'));
      assert.equal(fs.existsSync(out), false);
      assert.ok(spoolDirEmpty(t.p('spool')), 'spool file left behind');
    }
  } finally { delete process.env.IMGPORT_TMPDIR; t.cleanup(); }
});

test('output above the limit is refused; inner references are refused', async () => {
  const t = tmp();
  const old = decompressLimit();
  try {
    const r = t.p('d.raw');
    fs.writeFileSync(r, Buffer.alloc(3 * MiB, 1));
    const c = compress(r, 'zst');
    setDecompressLimit(MiB);
    await assert.rejects(openImage(c), errCode('UNSAFE_IMAGE', /limit/));
    setDecompressLimit(old);
    const base = t.p('base.qcow2');
    sh('qemu-img', ['create', '-f', 'qcow2', base, '8M']);
    const child = t.p('child.qcow2');
    sh('qemu-img', ['create', '-f', 'qcow2', '-b', 'base.qcow2', '-F', 'qcow2', child]);
    const cz = compress(child, 'gz');
    await assert.rejects(openImage(cz), errCode('UNSAFE_IMAGE'));
  } finally { setDecompressLimit(old); t.cleanup(); }
});

test('convert image.raw.xz / .zst of a multi-GiB disk in one pass with bounded memory', async () => {
  const t = tmp();
  try {
    const r = t.p('big.raw');
    sh('qemu-img', ['create', '-f', 'raw', r, '3G']);
    qemuIo(r, 'raw', ['write -P 0x5a 0 8M', `write -P 0x11 ${2 * 1024 - 1}M 2M`, 'write -P 0x22 3000M 1M']);
    const q = t.p('big.qcow2');
    sh('qemu-img', ['convert', '-O', 'qcow2', r, q]);
    const inputs = [compress(r, 'zst'), compress(q, 'xz')];
    const script = `
      import { convertImage } from ${JSON.stringify(path.resolve('src/engine/convert/index.ts'))};
      await convertImage({ source: process.argv[1], target: process.argv[2], targetFormat: 'raw' });
      console.log(JSON.stringify({ rss: process.resourceUsage().maxRSS * 1024 }));
      process.exit(0);`;
    for (const input of inputs) {
      const out = t.p('out.raw');
      const res = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script, input, out], { encoding: 'utf8' });
      assert.equal(res.status, 0, res.stderr);
      const { rss } = JSON.parse(res.stdout.trim().split('\n').pop()!);
      assert.ok(rss < 150 * MiB, `peak RSS ${Math.round(rss / MiB)} MiB for ${path.basename(input)}`);
      assert.equal(sh('qemu-img', ['compare', '-f', 'raw', '-F', 'raw', r, out]).trim(), 'Images are identical.');
      fs.rmSync(out);
    }
  } finally { t.cleanup(); }
});
