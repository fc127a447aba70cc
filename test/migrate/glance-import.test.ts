// --import against a small Glance v2 look-alike written here: it records every request so
// the test can check the create body (properties, min_disk, min_ram), the upload bytes,
// the token header, and that a failed upload deletes the half-made image.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import crypto from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { runV2v } from '../../src/migrate/v2v.js';
import { glanceBase, importToGlance } from '../../src/migrate/glance-import.js';
import { tmpdir, makeVmdk, windowsBiosVmx, linuxEfiVmx } from './fixtures.js';

interface Recorded { method: string; url: string; headers: http.IncomingHttpHeaders; body: Buffer }

async function fakeGlance(opts: { failUpload?: boolean } = {}): Promise<{ url: string; requests: Recorded[]; close(): Promise<void> }> {
  const requests: Recorded[] = [];
  let n = 0;
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const rec = { method: req.method!, url: req.url!, headers: req.headers, body: Buffer.concat(chunks) };
      requests.push(rec);
      if (req.method === 'POST' && req.url === '/v2/images') {
        const body = JSON.parse(rec.body.toString('utf8'));
        const id = `00000000-0000-4000-8000-${String(++n).padStart(12, '0')}`;
        res.writeHead(201, { 'Content-Type': 'application/json' });
        res.end(JSON.stringify({ ...body, id, status: 'queued' }));
        return;
      }
      if (req.method === 'PUT' && /^\/v2\/images\/[^/]+\/file$/.test(req.url!)) {
        if (opts.failUpload) { res.writeHead(413, { 'Content-Type': 'text/plain' }); res.end('Image storage media is full'); return; }
        res.writeHead(204); res.end(); return;
      }
      if (req.method === 'DELETE') { res.writeHead(204); res.end(); return; }
      res.writeHead(404); res.end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}`, requests, close: () => new Promise((r) => server.close(() => r())) };
}

const sha = (b: Buffer) => crypto.createHash('sha256').update(b).digest('hex');

test('glance base URL forms', () => {
  assert.equal(glanceBase('http://h:9292'), 'http://h:9292/v2');
  assert.equal(glanceBase('http://h:9292/'), 'http://h:9292/v2');
  assert.equal(glanceBase('http://h:9292/v2/'), 'http://h:9292/v2');
  assert.equal(glanceBase('https://h/image'), 'https://h/image/v2');
  assert.throws(() => glanceBase('ftp://h'), /only http/);
  assert.throws(() => glanceBase('not a url'), /not a URL/);
});

test('v2v --import: one image per disk with the properties, then the converted bytes', async () => {
  const t = tmpdir();
  const g = await fakeGlance();
  try {
    makeVmdk(path.join(t.dir, 'win.vmdk'), '32M', [[0x61, '0', '256k']]);
    makeVmdk(path.join(t.dir, 'win-data.vmdk'), '1100M', [[0x62, '1M', '64k']]);
    const out = path.join(t.dir, 'out');
    const r = await runV2v({ source: windowsBiosVmx(t.dir), outputDir: out, importUrl: g.url, token: 'secret-token' });
    assert.equal(r.imported?.length, 2);

    const posts = g.requests.filter((q) => q.method === 'POST');
    const puts = g.requests.filter((q) => q.method === 'PUT');
    assert.equal(posts.length, 2);
    assert.equal(puts.length, 2);
    assert.equal(g.requests.filter((q) => q.method === 'DELETE').length, 0);
    for (const q of g.requests) assert.equal(q.headers['x-auth-token'], 'secret-token');

    const b0 = JSON.parse(posts[0].body.toString('utf8'));
    assert.equal(posts[0].headers['content-type'], 'application/json');
    assert.deepEqual(
      { name: b0.name, disk_format: b0.disk_format, container_format: b0.container_format, min_disk: b0.min_disk, min_ram: b0.min_ram },
      { name: 'Win2019-sda', disk_format: 'qcow2', container_format: 'bare', min_disk: 1, min_ram: 8192 },
    );
    assert.equal(b0.hw_disk_bus, 'sata');
    assert.equal(b0.hw_vif_model, 'e1000e');
    assert.equal(b0.hw_firmware_type, 'bios');
    assert.equal(b0.hw_machine_type, 'q35');
    assert.equal(b0.os_type, 'windows');
    assert.equal(b0.os_distro, 'windows');
    const b1 = JSON.parse(posts[1].body.toString('utf8'));
    assert.equal(b1.name, 'Win2019-sdb');
    assert.equal(b1.min_disk, 2, '1100 MiB rounds up to 2 GiB');

    // Each PUT goes to the id the POST returned and carries exactly the converted file.
    assert.equal(puts[0].url, `/v2/images/${r.imported![0].id}/file`);
    assert.equal(puts[0].headers['content-type'], 'application/octet-stream');
    assert.equal(sha(puts[0].body), sha(fs.readFileSync(path.join(out, 'Win2019-sda.qcow2'))));
    assert.equal(sha(puts[1].body), sha(fs.readFileSync(path.join(out, 'Win2019-sdb.qcow2'))));
    assert.equal(Number(puts[1].headers['content-length']), fs.statSync(path.join(out, 'Win2019-sdb.qcow2')).size);
  } finally { await g.close(); t.cleanup(); }
});

test('a failed upload is reported with the status and the queued image is deleted', async () => {
  const t = tmpdir();
  const g = await fakeGlance({ failUpload: true });
  try {
    makeVmdk(path.join(t.dir, 'linux.vmdk'), '8M');
    const out = path.join(t.dir, 'out');
    await assert.rejects(runV2v({ source: linuxEfiVmx(t.dir), outputDir: out, importUrl: g.url + '/v2' }), /HTTP 413.*storage media is full/);
    const del = g.requests.filter((q) => q.method === 'DELETE');
    assert.equal(del.length, 1);
    assert.match(del[0].url, /^\/v2\/images\/00000000-0000-4000-8000-000000000001$/);
    assert.equal(g.requests[0].headers['x-auth-token'], undefined, 'no token when none is given');
  } finally { await g.close(); t.cleanup(); }
});

test('an unreachable endpoint is an I/O error, and --import with --dry-run is refused', async () => {
  const t = tmpdir();
  try {
    const f = path.join(t.dir, 'x.qcow2');
    fs.writeFileSync(f, 'x');
    const doc = { name: 'x', properties: {}, min_ram: 1, images: [{ name: 'x', file: f, disk_format: 'qcow2', container_format: 'bare' as const, min_disk: 1, min_ram: 1, properties: {} }] };
    await assert.rejects(importToGlance('http://127.0.0.1:1', doc), (e: Error & { code?: string }) => e.code === 'IO_ERROR');
    makeVmdk(path.join(t.dir, 'linux.vmdk'), '8M');
    await assert.rejects(runV2v({ source: linuxEfiVmx(t.dir), outputDir: t.dir, dryRun: true, importUrl: 'http://127.0.0.1:1' }), /dry-run/);
  } finally { t.cleanup(); }
});
