// The CLI verbs end to end (spawned through tsx): flags, output, exit codes, and bad
// input giving "imgport: <file>: <problem>" with nothing half-written left behind.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync, spawn as childSpawn } from 'node:child_process';
import { tmpDir, cli, hasQemuImg, qemuImg, pattern, sparseFile, MAIN, ROOT } from '../engine/ops/helpers.js';

const MiB = 1 << 20;
const VERBS = ['check', 'compare', 'convert', 'create', 'info', 'map', 'measure', 'resize', 'snapshot'];

let t: ReturnType<typeof tmpDir>;
let src: string;
before(() => {
  t = tmpDir();
  src = path.join(t.dir, 'src.raw');
  sparseFile(src, 32 * MiB, [[0, pattern(3 * MiB, 1)], [20 * MiB, pattern(12345, 2)]]);
});
after(() => t.cleanup());

function p(name: string): string { return path.join(t.dir, name); }

test('every verb has --help and is listed; unknown verbs fail', () => {
  const top = cli(['--help']);
  assert.equal(top.status, 0);
  for (const v of VERBS) {
    assert.match(top.stdout, new RegExp(`\\b${v}\\b`));
    const r = cli([v, '--help']);
    assert.equal(r.status, 0, `${v} --help: ${r.stderr}`);
    assert.match(r.stdout, new RegExp(`usage: imgport ${v}`));
  }
  const bad = cli(['frobnicate']);
  assert.equal(bad.status, 1);
  assert.match(bad.stderr, /unknown command 'frobnicate'/);
});

test('convert raw → raw, to stdout, with JSON progress; -U is accepted', () => {
  const out = p('copy.raw');
  const r = cli(['convert', '-f', 'raw', '-O', 'raw', '--progress', 'json', src, out]);
  assert.equal(r.status, 0, r.stderr);
  const lines = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as { done: number; total: number; percent: number });
  assert.ok(lines.length >= 1);
  assert.deepEqual(lines[lines.length - 1], { done: 32 * MiB, total: 32 * MiB, percent: 100 });
  assert.ok(lines.every((l, i) => i === 0 || l.done >= lines[i - 1]!.done));
  assert.ok(fs.readFileSync(out).equals(fs.readFileSync(src)));
  const info = cli(['info', '-U', '--output', 'json', out]);
  assert.equal(JSON.parse(info.stdout)['virtual-size'], 32 * MiB);
});

test('convert to stdout streams the exact bytes', () => {
  const bin = spawnSync(process.execPath, ['--import', 'tsx', MAIN, 'convert', '-O', 'raw', src, '-'], { cwd: ROOT, maxBuffer: 64 * MiB });
  assert.equal(bin.status, 0, String(bin.stderr));
  assert.ok((bin.stdout as Buffer).equals(fs.readFileSync(src)));
});

test('disk full (RLIMIT_FSIZE) names the target, exits non-zero, leaves no output', () => {
  const out = p('full.raw');
  // 1000 blocks of 1 KiB: the 3 MiB of data at the start cannot fit.
  const r = cli(['convert', '-O', 'raw', src, out], { shellPrefix: 'ulimit -f 1000; trap "" XFSZ' });
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, new RegExp(`^imgport: ${out.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: .*(EFBIG|write)`, 'm'));
  assert.equal(fs.existsSync(out), false);
});

test('bad input: missing file, unknown format, unwritable output path', () => {
  const missing = cli(['info', p('nope.img')]);
  assert.equal(missing.status, 1);
  assert.match(missing.stderr, /^imgport: .*nope\.img: cannot open: no such file/m);
  const fmt = cli(['convert', '-O', 'vfat', src, p('x.img')]);
  assert.equal(fmt.status, 1);
  assert.match(fmt.stderr, /unknown format 'vfat'/);
  assert.equal(fs.existsSync(p('x.img')), false);
  const dir = cli(['convert', '-O', 'raw', src, p('no/such/dir/out.raw')]);
  assert.equal(dir.status, 1);
  assert.match(dir.stderr, /out\.raw: cannot create/);
  const isdir = cli(['convert', '-O', 'raw', src, t.dir]);
  assert.equal(isdir.status, 1);
  assert.match(isdir.stderr, /cannot create|same file|EISDIR/);
  const opt = cli(['convert', '-O', 'raw', '-o', 'nonsense', src, p('y.raw')]);
  assert.equal(opt.status, 1);
  assert.match(opt.stderr, /invalid option 'nonsense'/);
  const flag = cli(['info', '--bogus', src]);
  assert.equal(flag.status, 1);
  assert.match(flag.stderr, /unknown option '--bogus'/);
});

test('compare exits 0 identical, 1 different (with the offset), 2 on error', () => {
  const copy = p('cmp.raw');
  fs.copyFileSync(src, copy);
  const same = cli(['compare', src, copy]);
  assert.equal(same.status, 0);
  assert.match(same.stdout, /Images are identical\./);
  const fd = fs.openSync(copy, 'r+');
  fs.writeSync(fd, Buffer.from([0xff]), 0, 1, 20 * MiB + 1000);
  fs.closeSync(fd);
  const diff = cli(['compare', '-f', 'raw', '-F', 'raw', src, copy]);
  assert.equal(diff.status, 1);
  assert.match(diff.stdout, new RegExp(`Content mismatch at offset ${20 * MiB + 512}!`));
  if (hasQemuImg) assert.equal(qemuImg(['compare', src, copy]).stdout.trim(), diff.stdout.trim());
  const err = cli(['compare', src, p('missing.raw')]);
  assert.equal(err.status, 2);
  assert.match(err.stderr, /missing\.raw/);
});

test('check exits 63 for formats without a check', () => {
  const r = cli(['check', src]);
  assert.equal(r.status, 63);
  assert.match(r.stderr, /does not support checks/);
});

test('create, resize, measure from the CLI', () => {
  const f = p('made.raw');
  const c = cli(['create', '-f', 'raw', f, '1.5G']);
  assert.equal(c.status, 0, c.stderr);
  assert.match(c.stdout, /Formatting '.*made\.raw', fmt=raw size=1610612736/);
  assert.equal(fs.statSync(f).size, 1.5 * 2 ** 30);
  assert.equal(cli(['resize', f, '-512M']).status, 1); // needs --shrink
  const r = cli(['resize', '--shrink', '-f', 'raw', f, '-512M']);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(fs.statSync(f).size, 2 ** 30);
  const m = cli(['measure', '--output', 'json', '-O', 'raw', '--size', '2G']);
  assert.deepEqual(JSON.parse(m.stdout), { required: 2 ** 31, 'fully-allocated': 2 ** 31 });
  const bad = cli(['create', '-f', 'raw', p('huge.raw'), '99999999999T']);
  assert.equal(bad.status, 1);
  assert.match(bad.stderr, /too large/);
  assert.equal(fs.existsSync(p('huge.raw')), false);
});


test('SIGINT during convert removes the partial output and exits 130', async () => {
  const big = p('big.raw');
  sparseFile(big, 4 * 2 ** 30, [[0, pattern(MiB, 3)]]);
  const out = p('interrupted.raw');
  // -S 0 writes every byte of the 4 GiB, so the copy is still running when the signal comes.
  const child = childSpawn(process.execPath, ['--import', 'tsx', MAIN, 'convert', '-S', '0', '-O', 'raw', big, out], { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => { stderr += d.toString(); });
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  // Wait until data is being written, then interrupt.
  for (let i = 0; i < 600 && !(fs.existsSync(out) && fs.statSync(out).blocks > 2048); i++) await new Promise((r) => setTimeout(r, 50));
  child.kill('SIGINT');
  const code = await exited;
  assert.equal(code, 130, stderr);
  assert.match(stderr, /interrupted.*output removed/);
  assert.equal(fs.existsSync(out), false);
  fs.rmSync(big);
});
