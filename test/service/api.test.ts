// The image API against SQLite and PostgreSQL: CRUD, JSON-patch, listing, data,
// statuses, tags, errors. Identity: auth 'none' (admin of the default project).
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { DRIVERS, JSON_H, OCTET_H, PATCH_H, qcow2Bytes, startHarness, type Harness } from './helpers.js';

for (const driver of DRIVERS) {
  describe(`image API on ${driver}`, () => {
    let h: Harness;
    before(async () => { h = await startHarness(driver); });
    after(async () => { await h.dispose(); });

    const create = async (body: object) => {
      const r = await h.app.inject({ method: 'POST', url: '/v2/images', headers: JSON_H, payload: JSON.stringify(body) });
      assert.equal(r.statusCode, 201, r.body);
      return r.json();
    };
    const show = async (id: string) => (await h.app.inject({ method: 'GET', url: `/v2/images/${id}`, headers: JSON_H })).json();
    const patch = (id: string, ops: object[], headers = PATCH_H) => h.app.inject({ method: 'PATCH', url: `/v2/images/${id}`, headers, payload: JSON.stringify(ops) });
    const put = (id: string, data: Buffer) => h.app.inject({ method: 'PUT', url: `/v2/images/${id}/file`, headers: OCTET_H, payload: data });
    const list = async (qs: string) => {
      const r = await h.app.inject({ method: 'GET', url: `/v2/images${qs}`, headers: JSON_H });
      assert.equal(r.statusCode, 200, r.body);
      return r.json();
    };

    it('discovers versions and serves schemas', async () => {
      const r = await h.app.inject({ method: 'GET', url: '/' });
      assert.equal(r.statusCode, 300);
      assert.equal(r.json().versions[0].id, 'v2.15');
      assert.equal((await h.app.inject({ method: 'GET', url: '/versions' })).statusCode, 200);
      for (const s of ['image', 'images', 'member', 'members']) {
        const sr = await h.app.inject({ method: 'GET', url: `/v2/schemas/${s}` });
        assert.equal(sr.statusCode, 200);
        assert.equal(sr.json().name, s);
      }
      const img = (await h.app.inject({ method: 'GET', url: '/v2/schemas/image' })).json();
      assert.deepEqual(img.additionalProperties, { type: 'string' });
      assert.equal(img.properties.status.readOnly, true);
    });

    it('creates an image with Glance defaults', async () => {
      const r = await h.app.inject({ method: 'POST', url: '/v2/images', headers: JSON_H, payload: { name: 'c1', disk_format: 'raw', container_format: 'bare', foo: 'bar', tags: ['a', 'a', 'b'] } });
      assert.equal(r.statusCode, 201);
      const b = r.json();
      assert.match(r.headers.location as string, new RegExp(`/v2/images/${b.id}$`));
      assert.equal(b.status, 'queued');
      assert.equal(b.visibility, 'shared');
      assert.equal(b.protected, false);
      assert.equal(b.os_hidden, false);
      assert.equal(b.size, null);
      assert.equal(b.checksum, null);
      assert.equal(b.owner, 'admin');
      assert.equal(b.foo, 'bar');
      assert.deepEqual([...b.tags].sort(), ['a', 'b']);
      assert.equal(b.self, `/v2/images/${b.id}`);
      assert.equal(b.file, `/v2/images/${b.id}/file`);
      assert.equal(b.schema, '/v2/schemas/image');
      assert.match(b.created_at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
      const again = await show(b.id);
      assert.deepEqual(again, b);
    });

    it('creates with a chosen id and refuses to reuse it', async () => {
      const id = '5e0f3b1c-6f43-4b52-9cb2-7a4c8c7a0001';
      await create({ id, name: 'with-id' });
      const r = await h.app.inject({ method: 'POST', url: '/v2/images', headers: JSON_H, payload: { id } });
      assert.equal(r.statusCode, 409);
    });

    it('refuses read-only, reserved and invalid attributes on create', async () => {
      const cases: [object, number, RegExp][] = [
        [{ status: 'active' }, 403, /Attribute 'status' is read-only/],
        [{ checksum: 'x' }, 403, /read-only/],
        [{ self: '/x' }, 403, /read-only/],
        [{ location: 'x' }, 403, /Attribute 'location' is reserved/],
        [{ os_glance_foo: 'x' }, 403, /reserved/],
        [{ disk_format: 'floppy' }, 400, /is not one of/],
        [{ name: 5 }, 400, /is not of type 'null', 'string'/],
        [{ custom: 5 }, 400, /5 is not of type 'string'/],
        [{ min_ram: -1 }, 400, /minimum/],
        [{ visibility: 'everyone' }, 400, /is not one of/],
        [{ id: 'not-a-uuid' }, 400, /does not match/],
        [{ ['k'.repeat(256)]: 'v' }, 400, /255/],
      ];
      for (const [body, status, msg] of cases) {
        const r = await h.app.inject({ method: 'POST', url: '/v2/images', headers: JSON_H, payload: JSON.stringify(body) });
        assert.equal(r.statusCode, status, `${JSON.stringify(body).slice(0, 50)}: ${r.body}`);
        assert.match(r.json().message, msg);
        assert.equal(r.json().code, `${status} ${status === 400 ? 'Bad Request' : 'Forbidden'}`);
      }
    });

    it('answers malformed JSON, empty bodies and non-objects with 400', async () => {
      let r = await h.app.inject({ method: 'POST', url: '/v2/images', headers: JSON_H, payload: '{"name": ' });
      assert.equal(r.statusCode, 400);
      assert.match(r.json().message, /Malformed JSON in request body/);
      r = await h.app.inject({ method: 'POST', url: '/v2/images', headers: JSON_H, payload: '' });
      assert.equal(r.statusCode, 400);
      assert.match(r.json().message, /Body expected/);
      r = await h.app.inject({ method: 'POST', url: '/v2/images', headers: JSON_H, payload: '[1,2]' });
      assert.equal(r.statusCode, 400);
    });

    it('shapes errors like webob: HTML by default, JSON on request, plain otherwise', async () => {
      const id = '00000000-0000-0000-0000-000000000000';
      let r = await h.app.inject({ method: 'GET', url: `/v2/images/${id}`, headers: { accept: '*/*' } });
      assert.equal(r.statusCode, 404);
      assert.match(r.headers['content-type'] as string, /text\/html/);
      assert.match(r.body, /<title>404 Not Found<\/title>/);
      assert.match(r.body, new RegExp(`No image found with ID ${id}`));
      r = await h.app.inject({ method: 'GET', url: `/v2/images/${id}`, headers: { accept: 'application/json' } });
      assert.deepEqual(r.json(), { message: `No image found with ID ${id}<br /><br />\n\n\n`, code: '404 Not Found', title: 'Not Found' });
      r = await h.app.inject({ method: 'GET', url: `/v2/images/${id}`, headers: { accept: '' } });
      assert.match(r.body, /^404 Not Found\n\nNo image found/);
    });

    it('applies JSON-patch add/replace/remove to core and custom properties', async () => {
      const img = await create({ name: 'p', disk_format: 'raw', container_format: 'bare', a: '1' });
      let r = await patch(img.id, [
        { op: 'replace', path: '/name', value: 'p2' },
        { op: 'add', path: '/b', value: '2' },
        { op: 'add', path: '/a', value: '1b' },
        { op: 'replace', path: '/min_ram', value: 512 },
        { op: 'add', path: '/protected', value: true },
        { op: 'replace', path: '/tags', value: ['x', 'y'] },
      ]);
      assert.equal(r.statusCode, 200, r.body);
      let b = r.json();
      assert.equal(b.name, 'p2');
      assert.equal(b.a, '1b');
      assert.equal(b.b, '2');
      assert.equal(b.min_ram, 512);
      assert.equal(b.protected, true);
      assert.deepEqual([...b.tags].sort(), ['x', 'y']);
      r = await patch(img.id, [{ op: 'remove', path: '/a' }, { op: 'add', path: '/protected', value: false }]);
      b = r.json();
      assert.equal('a' in b, false);
      assert.deepEqual(await show(img.id), b);
      // v2.0 (draft 4) syntax
      r = await patch(img.id, [{ replace: '/name', value: 'p3' }], { ...PATCH_H, 'content-type': 'application/openstack-images-v2.0-json-patch' });
      assert.equal(r.json().name, 'p3');
    });

    it('refuses bad patches with Glance statuses', async () => {
      const img = await create({ name: 'bad', disk_format: 'raw', container_format: 'bare' });
      const expectStatus = async (ops: object[], status: number, msg?: RegExp) => {
        const r = await patch(img.id, ops);
        assert.equal(r.statusCode, status, `${JSON.stringify(ops)} → ${r.body}`);
        if (msg) assert.match(r.json().message, msg);
      };
      await expectStatus([{ op: 'replace', path: '/nope', value: 'x' }], 409, /Property nope does not exist/);
      await expectStatus([{ op: 'remove', path: '/nope' }], 409);
      await expectStatus([{ op: 'remove', path: '/name' }], 403, /may not be removed/);
      for (const ro of ['id', 'status', 'checksum', 'size', 'virtual_size', 'created_at', 'updated_at', 'direct_url', 'self', 'file', 'schema', 'os_hash_algo', 'os_hash_value']) {
        await expectStatus([{ op: 'replace', path: `/${ro}`, value: 'x' }], 403, /read-only/);
      }
      await expectStatus([{ op: 'add', path: '/os_glance_x', value: 'x' }], 403, /reserved/);
      await expectStatus([{ op: 'add', path: '/deleted', value: 'x' }], 403, /reserved/);
      await expectStatus([{ op: 'move', path: '/name', value: 'x' }], 400, /Invalid operation/);
      await expectStatus([{ op: 'add', path: 'name', value: 'x' }], 400, /does not start with/);
      await expectStatus([{ op: 'add', path: '/a/b', value: 'x' }], 400, /Invalid JSON pointer/);
      await expectStatus([{ op: 'add', path: '/name' }], 400, /requires a member named "value"/);
      await expectStatus([{ op: 'add', path: '/min_disk', value: 'big' }], 400, /not of type/);
      let r = await patch(img.id, [{ op: 'add', path: '/a', value: 'x' }], JSON_H);
      assert.equal(r.statusCode, 415);
      assert.match(r.headers['accept-patch'] as string, /openstack-images-v2.1-json-patch/);
      r = await h.app.inject({ method: 'PATCH', url: `/v2/images/${img.id}`, headers: PATCH_H, payload: '{"op": "add"}' });
      assert.equal(r.statusCode, 400);
      assert.match(r.json().message, /must be a JSON array/);
    });

    it('uploads, hashes, inspects and downloads image data', async () => {
      const img = await create({ name: 'data', disk_format: 'qcow2', container_format: 'bare' });
      const data = qcow2Bytes(1 << 30, 3 * 1024 * 1024 + 123);
      const r = await put(img.id, data);
      assert.equal(r.statusCode, 204, r.body);
      const b = await show(img.id);
      assert.equal(b.status, 'active');
      assert.equal(b.size, data.length);
      assert.equal(b.virtual_size, 1 << 30);
      assert.equal(b.checksum, createHash('md5').update(data).digest('hex'));
      assert.equal(b.os_hash_algo, 'sha512');
      assert.equal(b.os_hash_value, createHash('sha512').update(data).digest('hex'));
      const g = await h.app.inject({ method: 'GET', url: `/v2/images/${img.id}/file` });
      assert.equal(g.statusCode, 200);
      assert.equal(g.headers['content-md5'], b.checksum);
      assert.equal(g.headers['content-type'], 'application/octet-stream');
      assert.ok(g.rawPayload.equals(data));
      const part = await h.app.inject({ method: 'GET', url: `/v2/images/${img.id}/file`, headers: { range: 'bytes=100-199' } });
      assert.equal(part.statusCode, 206);
      assert.equal(part.headers['content-range'], `bytes 100-199/${data.length}`);
      assert.ok(part.rawPayload.equals(data.subarray(100, 200)));
      const tail = await h.app.inject({ method: 'GET', url: `/v2/images/${img.id}/file`, headers: { range: 'bytes=-10' } });
      assert.ok(tail.rawPayload.equals(data.subarray(data.length - 10)));
      const bad = await h.app.inject({ method: 'GET', url: `/v2/images/${img.id}/file`, headers: { range: `bytes=${data.length}-` } });
      assert.equal(bad.statusCode, 416);
      // a second upload to an active image conflicts
      const again = await put(img.id, data);
      assert.equal(again.statusCode, 409);
      assert.match(again.json().message, /active to saving is not allowed/);
      // disk_format can no longer change
      assert.equal((await patch(img.id, [{ op: 'replace', path: '/disk_format', value: 'raw' }])).statusCode, 403);
    });

    it('answers 204 for the data of an image without data', async () => {
      const img = await create({ name: 'empty' });
      const g = await h.app.inject({ method: 'GET', url: `/v2/images/${img.id}/file` });
      assert.equal(g.statusCode, 204);
    });

    it('refuses data whose format does not match disk_format, leaving nothing behind', async () => {
      const img = await create({ name: 'mismatch', disk_format: 'qcow2', container_format: 'bare' });
      const r = await put(img.id, Buffer.alloc(2 * 1024 * 1024, 7));
      assert.equal(r.statusCode, 400);
      assert.match(r.json().message, /does not match disk_format qcow2/);
      const b = await show(img.id);
      assert.equal(b.status, 'queued');
      assert.equal(b.size, null);
      assert.equal(b.checksum, null);
      assert.deepEqual(readdirSync(path.join(h.dir, 'images')).filter((f) => f.includes(img.id)), []);
      // raw data declared raw is fine afterwards; a qcow2 declared raw is refused
      assert.equal((await patch(img.id, [{ op: 'replace', path: '/disk_format', value: 'raw' }])).statusCode, 200);
      assert.equal((await put(img.id, qcow2Bytes(1 << 20, 4096))).statusCode, 400);
      assert.equal((await put(img.id, Buffer.alloc(4096, 1))).statusCode, 204);
    });

    it('refuses unsafe images (qcow2 with a backing file)', async () => {
      const img = await create({ name: 'backing', disk_format: 'qcow2', container_format: 'bare' });
      const data = qcow2Bytes(1 << 20, 65536);
      const bf = Buffer.from('/etc/passwd');
      data.writeBigUInt64BE(512n, 8);
      data.writeUInt32BE(bf.length, 16);
      bf.copy(data, 512);
      const r = await put(img.id, data);
      assert.equal(r.statusCode, 400);
      assert.equal((await show(img.id)).status, 'queued');
    });

    it('requires disk_format and container_format before data', async () => {
      const img = await create({ name: 'noformat' });
      const r = await put(img.id, Buffer.alloc(10));
      assert.equal(r.statusCode, 400);
      assert.match(r.json().message, /Properties disk_format, container_format must be set prior to saving data/);
      assert.equal((await show(img.id)).status, 'queued');
    });

    it('refuses uploads with the wrong content type (415)', async () => {
      const img = await create({ name: 'ct', disk_format: 'raw', container_format: 'bare' });
      const r = await h.app.inject({ method: 'PUT', url: `/v2/images/${img.id}/file`, headers: { 'content-type': 'text/plain', accept: 'application/json' }, payload: 'hello' });
      assert.equal(r.statusCode, 415);
      assert.equal((await show(img.id)).status, 'queued');
    });

    it('lists with filters, sorting and pagination', async () => {
      const ids: string[] = [];
      for (let i = 0; i < 7; i++) {
        const img = await create({ name: `L${i}`, disk_format: i % 2 ? 'qcow2' : 'raw', container_format: 'bare', series: 'L', rank: String(i % 3), tags: i < 3 ? ['low'] : ['high'] });
        ids.push(img.id);
        if (i === 2) assert.equal((await put(img.id, Buffer.alloc(1000 + i))).statusCode, 204);
        if (i === 4) assert.equal((await put(img.id, Buffer.alloc(5000))).statusCode, 204);
      }
      let b = await list('?series=L&sort=name:asc');
      assert.deepEqual(b.images.map((x: any) => x.name), ['L0', 'L1', 'L2', 'L3', 'L4', 'L5', 'L6']);
      assert.equal(b.first, '/v2/images?series=L&sort=name%3Aasc');
      assert.equal(b.schema, '/v2/schemas/images');
      assert.equal(b.next, undefined);
      b = await list('?series=L&sort_key=name&sort_dir=desc&limit=3');
      assert.deepEqual(b.images.map((x: any) => x.name), ['L6', 'L5', 'L4']);
      assert.ok(b.next);
      const n1 = await list(b.next.replace('/v2/images', ''));
      assert.deepEqual(n1.images.map((x: any) => x.name), ['L3', 'L2', 'L1']);
      const n2 = await list(n1.next.replace('/v2/images', ''));
      assert.deepEqual(n2.images.map((x: any) => x.name), ['L0']);
      assert.equal(n2.next, undefined);
      // default order: created_at desc, id desc
      b = await list('?series=L');
      assert.equal(b.images.length, 7);
      assert.equal((await list('?series=L&name=L2')).images[0].id, ids[2]);
      assert.deepEqual((await list('?series=L&name=in:L1,L5&sort=name:asc')).images.map((x: any) => x.name), ['L1', 'L5']);
      assert.deepEqual((await list('?series=L&disk_format=qcow2&sort=name:asc')).images.map((x: any) => x.name), ['L1', 'L3', 'L5']);
      assert.deepEqual((await list('?series=L&status=active&sort=name:asc')).images.map((x: any) => x.name), ['L2', 'L4']);
      assert.deepEqual((await list('?series=L&size_min=2000')).images.map((x: any) => x.name), ['L4']);
      assert.deepEqual((await list('?series=L&size_max=2000')).images.map((x: any) => x.name), ['L2']);
      assert.deepEqual((await list('?series=L&tag=low&sort=name:asc')).images.map((x: any) => x.name), ['L0', 'L1', 'L2']);
      assert.deepEqual((await list('?series=L&tag=low&tag=high')).images, []);
      assert.deepEqual((await list('?series=L&rank=2&sort=name:asc')).images.map((x: any) => x.name), ['L2', 'L5']);
      assert.deepEqual((await list('?series=L&rank=in:0,1&sort=name:asc')).images.map((x: any) => x.name), ['L0', 'L1', 'L3', 'L4', 'L6']);
      assert.equal((await list('?series=L&created_at=gte:2000-01-01T00:00:00Z')).images.length, 7);
      assert.equal((await list('?series=L&created_at=lt:2000-01-01T00:00:00Z')).images.length, 0);
      assert.equal((await list('?series=L&updated_at=neq:2000-01-01T00:00:00Z')).images.length, 7);
      assert.deepEqual((await list('?series=L&sort=size:desc,name:asc&limit=3')).images.map((x: any) => x.name), ['L4', 'L2', 'L0']);
      // paging through a nullable sort key in both directions visits every image once
      for (const dir of ['asc', 'desc']) {
        const seen: string[] = [];
        let url = `?series=L&sort=size:${dir}&limit=2`;
        for (;;) {
          const p = await list(url);
          seen.push(...p.images.map((x: any) => x.name));
          if (!p.next) break;
          url = p.next.replace('/v2/images', '');
        }
        assert.deepEqual([...seen].sort(), ['L0', 'L1', 'L2', 'L3', 'L4', 'L5', 'L6'], dir);
      }
      const bad = async (qs: string, msg: RegExp) => {
        const r = await h.app.inject({ method: 'GET', url: `/v2/images${qs}`, headers: JSON_H });
        assert.equal(r.statusCode, 400, qs);
        assert.match(r.json().message, msg);
      };
      await bad('?sort_key=owner', /Invalid sort key/);
      await bad('?sort_dir=up', /Invalid sort direction/);
      await bad('?sort=name:asc&sort_key=name', /cannot be combined/);
      await bad('?limit=-1', /limit param must be positive/);
      await bad('?limit=x', /must be an integer/);
      await bad('?marker=00000000-0000-0000-0000-000000000000', /marker/);
      await bad('?visibility=everyone', /Invalid visibility/);
      await bad('?size_min=big', /non-numeric/);
      await bad('?name=like:x', /unknown operator/);
      await bad('?created_at=gt:yesterday', /ISO 8601/);
      await bad('?os_hidden=maybe', /os_hidden/);
      await bad('?member_status=maybe', /Invalid status/);
    });

    it('caps limit at api_limit_max and hides os_hidden images unless asked', async () => {
      const hid = await create({ name: 'hidden-one', os_hidden: true, series: 'H' });
      await create({ name: 'shown-one', series: 'H' });
      assert.deepEqual((await list('?series=H')).images.map((x: any) => x.name), ['shown-one']);
      assert.deepEqual((await list('?series=H&os_hidden=true')).images.map((x: any) => x.id), [hid.id]);
      assert.equal((await show(hid.id)).os_hidden, true);
      const r = await list('?limit=100000');
      assert.ok(r.images.length <= 1000);
    });

    it('tags: add idempotently, remove, 404 for a missing tag', async () => {
      const img = await create({ name: 'tags' });
      assert.equal((await h.app.inject({ method: 'PUT', url: `/v2/images/${img.id}/tags/one` })).statusCode, 204);
      assert.equal((await h.app.inject({ method: 'PUT', url: `/v2/images/${img.id}/tags/one` })).statusCode, 204);
      assert.deepEqual((await show(img.id)).tags, ['one']);
      assert.equal((await h.app.inject({ method: 'DELETE', url: `/v2/images/${img.id}/tags/one` })).statusCode, 204);
      assert.equal((await h.app.inject({ method: 'DELETE', url: `/v2/images/${img.id}/tags/one` })).statusCode, 404);
      assert.equal((await h.app.inject({ method: 'PUT', url: `/v2/images/${img.id}/tags/${'t'.repeat(256)}` })).statusCode, 400);
    });

    it('deactivates and reactivates active images only', async () => {
      const img = await create({ name: 'deact', disk_format: 'raw', container_format: 'bare' });
      const act = (a: string) => h.app.inject({ method: 'POST', url: `/v2/images/${img.id}/actions/${a}` });
      assert.equal((await act('deactivate')).statusCode, 403);
      await put(img.id, Buffer.alloc(100));
      assert.equal((await act('deactivate')).statusCode, 204);
      assert.equal((await show(img.id)).status, 'deactivated');
      assert.equal((await act('deactivate')).statusCode, 204);
      // admins may still download a deactivated image
      assert.equal((await h.app.inject({ method: 'GET', url: `/v2/images/${img.id}/file` })).statusCode, 200);
      assert.equal((await act('reactivate')).statusCode, 204);
      assert.equal((await show(img.id)).status, 'active');
      assert.equal((await act('reactivate')).statusCode, 204);
    });

    it('deletes images (protected ones refused) and their data', async () => {
      const img = await create({ name: 'del', disk_format: 'raw', container_format: 'bare', protected: true });
      await put(img.id, Buffer.alloc(100, 1));
      const file = path.join(h.dir, 'images', img.id);
      assert.ok(existsSync(file));
      let r = await h.app.inject({ method: 'DELETE', url: `/v2/images/${img.id}`, headers: JSON_H });
      assert.equal(r.statusCode, 403);
      assert.match(r.json().message, /is protected and cannot be deleted/);
      await patch(img.id, [{ op: 'replace', path: '/protected', value: false }]);
      r = await h.app.inject({ method: 'DELETE', url: `/v2/images/${img.id}` });
      assert.equal(r.statusCode, 204);
      assert.equal(existsSync(file), false);
      assert.equal((await h.app.inject({ method: 'GET', url: `/v2/images/${img.id}` })).statusCode, 404);
      assert.equal((await h.app.inject({ method: 'DELETE', url: `/v2/images/${img.id}` })).statusCode, 404);
      // the id of a deleted image stays taken
      assert.equal((await h.app.inject({ method: 'POST', url: '/v2/images', headers: JSON_H, payload: { id: img.id } })).statusCode, 409);
    });

    it('recovers after a restart: saving goes back to queued, stray files are removed', async () => {
      const img = await create({ name: 'crash', disk_format: 'raw', container_format: 'bare' });
      await h.svc.db.updateTable('images').set({ status: 'saving' }).where('id', '=', img.id).execute();
      const { writeFileSync } = await import('node:fs');
      writeFileSync(path.join(h.dir, 'images', `.tmp-${img.id}-abc`), 'partial');
      writeFileSync(path.join(h.dir, 'images', 'orphan'), 'x');
      await h.restart();
      assert.equal((await show(img.id)).status, 'queued');
      assert.deepEqual(readdirSync(path.join(h.dir, 'images')).filter((f) => f.startsWith('.tmp-') || f === 'orphan'), []);
    });
  });
}
