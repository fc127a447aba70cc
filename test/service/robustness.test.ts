// Failure paths over real HTTP: client gone mid-upload, concurrent uploads, a full
// disk, oversized headers. Nothing may be left behind and the service keeps serving.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { DRIVERS, startHarness, type Harness } from './helpers.js';
import { FileStore } from '../../src/service/stores/file.js';
import type { Store, StoreWriter } from '../../src/service/stores/store.js';

/** A file store whose writes fail with ENOSPC once `budget` bytes are written. */
class FullDiskStore extends FileStore {
  budget = Infinity;
  override async begin(imageId: string): Promise<StoreWriter> {
    const w = await super.begin(imageId);
    return {
      writeAt: async (data, pos) => {
        if (pos + data.byteLength > this.budget) {
          throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC', errno: -28 });
        }
        return w.writeAt(data, pos);
      },
      commit: () => w.commit(),
      abort: () => w.abort(),
    };
  }
}

function request(base: string, method: string, p: string, body?: string | Buffer, headers: Record<string, string> = {}): Promise<{ status: number; body: string; headers: http.IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    const r = http.request(`${base}${p}`, { method, headers: { accept: 'application/json', ...headers } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, body: Buffer.concat(chunks).toString(), headers: res.headers }));
    });
    r.on('error', reject);
    r.end(body);
  });
}

const waitFor = async (cond: () => Promise<boolean>, what: string) => {
  for (let i = 0; i < 200; i++) { if (await cond()) return; await new Promise((r) => setTimeout(r, 25)); }
  assert.fail(`timed out waiting for ${what}`);
};

for (const driver of DRIVERS) {
  describe(`robustness on ${driver}`, () => {
    let h: Harness;
    let base: string;
    let store: FullDiskStore;
    before(async () => {
      h = await startHarness(driver, {}, { store: (cfg) => (store = new FullDiskStore(cfg.store.dir, false)) as Store });
      base = await h.app.listen({ host: '127.0.0.1', port: 0 });
    });
    after(async () => { await h.dispose(); });

    const newImage = async (name: string) => {
      const r = await request(base, 'POST', '/v2/images', JSON.stringify({ name, disk_format: 'raw', container_format: 'bare' }), { 'content-type': 'application/json' });
      assert.equal(r.status, 201, r.body);
      return JSON.parse(r.body).id as string;
    };
    const status = async (id: string) => JSON.parse((await request(base, 'GET', `/v2/images/${id}`)).body).status as string;
    const leftovers = (id: string) => readdirSync(path.join(h.dir, 'images')).filter((f) => f.includes(id));

    /** Starts a chunked upload, sends `bytes`, and returns the socket-level request. */
    const startUpload = async (id: string, bytes: number) => {
      const req = http.request(`${base}/v2/images/${id}/file`, { method: 'PUT', headers: { 'content-type': 'application/octet-stream', 'transfer-encoding': 'chunked' } });
      const done = new Promise<number>((resolve) => {
        req.on('response', (res) => { res.resume(); resolve(res.statusCode!); });
        req.on('error', () => resolve(-1));
      });
      req.write(Buffer.alloc(bytes, 3));
      await waitFor(async () => (await status(id)) === 'saving', 'saving');
      return { req, done };
    };

    it('puts an image back to queued with no file when the client disconnects mid-upload', async () => {
      const id = await newImage('disconnect');
      const { req, done } = await startUpload(id, 2 * 1024 * 1024);
      req.destroy();
      await done;
      await waitFor(async () => (await status(id)) === 'queued', 'queued');
      await waitFor(async () => leftovers(id).length === 0, 'no leftovers');
      // and the image can be uploaded again
      const r = await request(base, 'PUT', `/v2/images/${id}/file`, Buffer.alloc(1000, 1), { 'content-type': 'application/octet-stream' });
      assert.equal(r.status, 204, r.body);
      assert.equal(await status(id), 'active');
    });

    it('refuses a second concurrent upload with 409 and finishes the first', async () => {
      const id = await newImage('concurrent');
      const { req, done } = await startUpload(id, 1024 * 1024);
      const second = await request(base, 'PUT', `/v2/images/${id}/file`, Buffer.alloc(1000), { 'content-type': 'application/octet-stream' });
      assert.equal(second.status, 409);
      assert.match(JSON.parse(second.body).message, /saving to saving is not allowed/);
      req.end(Buffer.alloc(1000, 4));
      assert.equal(await done, 204);
      const img = JSON.parse((await request(base, 'GET', `/v2/images/${id}`)).body);
      assert.equal(img.status, 'active');
      assert.equal(img.size, 1024 * 1024 + 1000);
    });

    it('deleting an image while it uploads makes the upload fail with 410 and removes the data', async () => {
      const id = await newImage('deleted-during-upload');
      const { req, done } = await startUpload(id, 64 * 1024);
      assert.equal((await request(base, 'DELETE', `/v2/images/${id}`)).status, 204);
      req.end(Buffer.alloc(10));
      assert.equal(await done, 410);
      await waitFor(async () => leftovers(id).length === 0, 'no leftovers');
    });

    it('answers a full disk with 413, leaves nothing, and keeps serving', async () => {
      const id = await newImage('enospc');
      store.budget = 1024 * 1024;
      try {
        const r = await request(base, 'PUT', `/v2/images/${id}/file`, Buffer.alloc(3 * 1024 * 1024, 9), { 'content-type': 'application/octet-stream' });
        assert.equal(r.status, 413);
        assert.match(JSON.parse(r.body).message, /Image storage media is full/);
      } finally { store.budget = Infinity; }
      assert.equal(await status(id), 'queued');
      assert.deepEqual(leftovers(id), []);
      const again = await request(base, 'PUT', `/v2/images/${id}/file`, Buffer.alloc(4096, 9), { 'content-type': 'application/octet-stream' });
      assert.equal(again.status, 204);
      assert.equal((await request(base, 'GET', '/v2/images')).status, 200);
    });

    it('refuses a body shorter than its Content-Length... by the client closing: image stays queued', async () => {
      const id = await newImage('short');
      const sock = net.connect(Number(new URL(base).port), '127.0.0.1');
      await new Promise((r) => sock.on('connect', r));
      sock.write(`PUT /v2/images/${id}/file HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\nContent-Length: 100000\r\n\r\n`);
      sock.write(Buffer.alloc(5000));
      await waitFor(async () => (await status(id)) === 'saving', 'saving');
      sock.destroy();
      await waitFor(async () => (await status(id)) === 'queued', 'queued');
      assert.deepEqual(leftovers(id), []);
    });

    it('answers oversized headers with 431 and keeps serving', async () => {
      const sock = net.connect(Number(new URL(base).port), '127.0.0.1');
      let got = '';
      sock.on('data', (d) => { got += d.toString(); });
      const closed = new Promise((r) => { sock.on('close', r); sock.on('error', r); });
      sock.write(`GET /v2/images HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(64 * 1024)}\r\n\r\n`, () => {});
      await closed;
      assert.match(got, /^HTTP\/1\.1 431/);
      assert.equal((await request(base, 'GET', '/v2/images')).status, 200);
    });

    it('answers unknown paths like Glance (300 versions outside /v2, 404 inside)', async () => {
      assert.equal((await request(base, 'GET', '/nowhere')).status, 300);
      assert.equal((await request(base, 'GET', '/v2/nowhere')).status, 404);
    });
  });
}
