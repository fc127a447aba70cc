// The CLI verbs on qcow2 images end to end (spawned through tsx), checked with qemu-img,
// and hostile qcow2 input: truncated, wrong magic, absurd sizes, backing loops and escapes.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { findFormat } from '../../src/engine/formats/registry.js';
import { tmpDir, cli, hasQemuImg, qemuImg, qemuIo, pattern, sparseFile } from '../engine/ops/helpers.js';

const hasQcow2 = findFormat('qcow2') !== undefined;
const skipQcow2 = !hasQemuImg ? 'qemu-img not installed' : !hasQcow2 ? 'qcow2 driver not in the registry yet' : false;
const MiB = 1 << 20;

let t: ReturnType<typeof tmpDir>;
let src: string;
before(() => {
  t = tmpDir();
  src = path.join(t.dir, 'src.raw');
  sparseFile(src, 32 * MiB, [[0, pattern(3 * MiB, 1)], [20 * MiB, pattern(12345, 2)]]);
});
after(() => t.cleanup());

function p(name: string): string { return path.join(t.dir, name); }

test('qcow2 via the CLI: convert both ways, -c, -B, info/map/check json, snapshots', { skip: skipQcow2 }, () => {
  const q = p('c.qcow2');
  let r = cli(['convert', '-p', '-O', 'qcow2', '-o', 'cluster_size=65536', src, q]);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(qemuImg(['check', q]).status, 0);
  assert.equal(qemuImg(['compare', src, q]).status, 0);
  const qc = p('cc.qcow2');
  r = cli(['convert', '-c', '-O', 'qcow2', src, qc]);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(qemuImg(['check', qc]).status, 0);
  assert.equal(qemuImg(['compare', src, qc]).status, 0);
  const back = p('back.raw');
  assert.equal(cli(['convert', '-f', 'qcow2', '-O', 'raw', qc, back]).status, 0);
  assert.ok(fs.readFileSync(back).equals(fs.readFileSync(src)));
  // -B: an overlay of q holding only the difference.
  const top = p('top.qcow2');
  qemuImg(['create', '-q', '-f', 'qcow2', '-b', 'c.qcow2', '-F', 'qcow2', top]);
  qemuIo(top, ['write -P 0x5a 5M 64k'], 'qcow2');
  const thin = p('thin.qcow2');
  r = cli(['convert', '-O', 'qcow2', '-B', 'c.qcow2', '-F', 'qcow2', top, thin]);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(qemuImg(['compare', top, thin]).status, 0);
  const ti = JSON.parse(cli(['info', '--output', 'json', thin]).stdout);
  assert.equal(ti['backing-filename'], 'c.qcow2');
  assert.ok(ti['actual-size'] < 2 * MiB);
  // info / map / check json
  const qi = JSON.parse(qemuImg(['info', '--output', 'json', q]).stdout);
  const oi = JSON.parse(cli(['info', '--output', 'json', q]).stdout);
  for (const k of ['virtual-size', 'format', 'cluster-size', 'dirty-flag', 'format-specific']) assert.deepEqual(oi[k], qi[k], k);
  assert.equal(cli(['map', '--output', 'json', top]).stdout.trim(), qemuImg(['map', '--output', 'json', top]).stdout.trim());
  const ck = cli(['check', '--output', 'json', q]);
  assert.equal(ck.status, 0);
  assert.equal(JSON.parse(ck.stdout)['check-errors'], 0);
  // snapshots
  assert.equal(cli(['snapshot', '-c', 'snap1', q]).status, 0);
  assert.match(cli(['snapshot', '-l', q]).stdout, /snap1/);
  assert.match(qemuImg(['snapshot', '-l', q]).stdout, /snap1/);
  assert.equal(cli(['snapshot', '-d', 'snap1', q]).status, 0);
  assert.equal(qemuImg(['check', q]).status, 0);
  // create with -b and no size
  const ov = p('ov.qcow2');
  r = cli(['create', '-f', 'qcow2', '-b', 'c.qcow2', '-F', 'qcow2', ov]);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(JSON.parse(qemuImg(['info', '--output', 'json', ov]).stdout)['virtual-size'], 32 * MiB);
  // stdout needs a streamable format
  const s = cli(['convert', '-O', 'qcow2', src, '-']);
  assert.equal(s.status, 1);
  assert.match(s.stderr, /cannot be written to a stream/);
});

test('bad qcow2 input: truncated, wrong magic, absurd size, backing loops and escapes', { skip: skipQcow2 }, () => {
  const good = p('g.qcow2');
  qemuImg(['create', '-q', '-f', 'qcow2', good, '64M']);
  const trunc = p('trunc.qcow2');
  fs.writeFileSync(trunc, fs.readFileSync(good).subarray(0, 40));
  let r = cli(['info', '-f', 'qcow2', trunc]);
  assert.equal(r.status, 1);
  assert.match(r.stderr, /^imgport: .*trunc\.qcow2: /m);
  assert.doesNotMatch(r.stderr, /internal error/);
  r = cli(['convert', '-f', 'qcow2', '-O', 'raw', trunc, p('t.raw')]);
  assert.notEqual(r.status, 0);
  assert.equal(fs.existsSync(p('t.raw')), false);

  const magic = p('magic.qcow2');
  const buf = fs.readFileSync(good);
  buf.write('XXXX', 0, 'latin1');
  fs.writeFileSync(magic, buf);
  r = cli(['info', '-f', 'qcow2', magic]);
  assert.equal(r.status, 1);
  assert.match(r.stderr, /magic\.qcow2: /);
  assert.doesNotMatch(r.stderr, /internal error/);

  const absurd = p('absurd.qcow2');
  const b2 = fs.readFileSync(good);
  b2.writeBigUInt64BE(1n << 62n, 24); // virtual size field
  fs.writeFileSync(absurd, b2);
  r = cli(['convert', '-O', 'raw', absurd, p('absurd.raw')]);
  assert.equal(r.status, 1);
  assert.match(r.stderr, /absurd\.qcow2: /);
  assert.doesNotMatch(r.stderr, /internal error/);
  assert.equal(fs.existsSync(p('absurd.raw')), false);

  // a → b → a
  const a = p('loop-a.qcow2'), b = p('loop-b.qcow2');
  qemuImg(['create', '-q', '-f', 'qcow2', '-u', '-b', 'loop-b.qcow2', '-F', 'qcow2', a, '64M']);
  qemuImg(['create', '-q', '-f', 'qcow2', '-u', '-b', 'loop-a.qcow2', '-F', 'qcow2', b, '64M']);
  r = cli(['convert', '-O', 'raw', a, p('loop.raw')]);
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /loop/);
  assert.equal(fs.existsSync(p('loop.raw')), false);
  r = cli(['info', '--backing-chain', a]);
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /loop/);

  // Absolute and ../ backing paths are refused by default (exit 3: unsafe).
  for (const ref of [good, '../g.qcow2']) {
    const sub = p('sub');
    fs.mkdirSync(sub, { recursive: true });
    const o = path.join(sub, 'o.qcow2');
    qemuImg(['create', '-q', '-f', 'qcow2', '-u', '-b', ref, '-F', 'qcow2', o, '64M']);
    r = cli(['map', o]);
    assert.equal(r.status, 3, r.stderr);
    assert.match(r.stderr, /o\.qcow2: backing file .*(absolute|outside)/);
    // info without --backing-chain only names the backing file: that is allowed.
    assert.equal(cli(['info', o]).status, 0);
  }
});
