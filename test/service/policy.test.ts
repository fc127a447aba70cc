// Visibility, membership, roles and quotas with identities from trusted headers,
// against SQLite and PostgreSQL.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { DRIVERS, JSON_H, OCTET_H, PATCH_H, as, startHarness, type Harness, type Hdrs } from './helpers.js';

for (const driver of DRIVERS) {
  describe(`policy and members on ${driver}`, () => {
    let h: Harness;
    before(async () => {
      h = await startHarness(driver, {
        auth: 'trusted-headers',
        memberQuota: 3,
        quotas: { imageCount: 8, imageSize: 10_000, tagCount: 3, propertyCount: 3 },
      });
    });
    after(async () => { await h.dispose(); });

    const req = (method: string, url: string, who: Hdrs, payload?: unknown, headers: Hdrs = JSON_H) =>
      h.app.inject({ method: method as 'GET', url, headers: { ...headers, ...who }, payload: payload === undefined ? undefined : JSON.stringify(payload) });
    const create = async (who: Hdrs, body: object) => {
      const r = await req('POST', '/v2/images', who, body);
      assert.equal(r.statusCode, 201, r.body);
      return r.json();
    };
    const ids = async (who: Hdrs, qs = '') => (await req('GET', `/v2/images${qs}`, who)).json().images.map((i: any) => i.name).sort();

    const A = as('proj-a'), B = as('proj-b'), C = as('proj-c');
    const ADMIN = as('proj-admin', 'admin');
    const READER_A = as('proj-a', 'reader');

    it('applies visibility rules to show and list', async () => {
      await create(A, { name: 'a-private', visibility: 'private' });
      await create(A, { name: 'a-shared' });
      await create(A, { name: 'a-community', visibility: 'community' });
      // only admins publicize
      assert.equal((await req('POST', '/v2/images', A, { name: 'a-public', visibility: 'public' })).statusCode, 403);
      const pub = await create(ADMIN, { name: 'pub', visibility: 'public', owner: 'proj-a' });
      assert.equal(pub.owner, 'proj-a');
      assert.deepEqual(await ids(A), ['a-community', 'a-private', 'a-shared', 'pub']);
      // community images are listed to others only when asked for
      assert.deepEqual(await ids(B), ['pub']);
      assert.deepEqual(await ids(B, '?visibility=community'), ['a-community']);
      const all = (await req('GET', '/v2/images', A)).json().images as any[];
      const priv = all.find((i) => i.name === 'a-private');
      assert.equal((await req('GET', `/v2/images/${priv.id}`, B)).statusCode, 404);
      assert.equal((await req('GET', `/v2/images/${priv.id}`, ADMIN)).statusCode, 200);
      assert.equal((await req('GET', `/v2/images/${priv.id}`, READER_A)).statusCode, 200);
      // the admin sees everything
      assert.ok((await ids(ADMIN)).includes('a-private'));
    });

    it('enforces owner/member/reader/admin rules on writes', async () => {
      const img = await create(A, { name: 'rules', disk_format: 'raw', container_format: 'bare', visibility: 'community' });
      const patch = (who: Hdrs, ops: object[]) => req('PATCH', `/v2/images/${img.id}`, who, ops, PATCH_H);
      // another project sees a community image but may not change it
      assert.equal((await patch(B, [{ op: 'add', path: '/x', value: '1' }])).statusCode, 403);
      assert.equal((await req('DELETE', `/v2/images/${img.id}`, B)).statusCode, 403);
      assert.equal((await req('PUT', `/v2/images/${img.id}/tags/t`, B)).statusCode, 403);
      assert.equal((await h.app.inject({ method: 'PUT', url: `/v2/images/${img.id}/file`, headers: { ...OCTET_H, ...B }, payload: Buffer.alloc(10) })).statusCode, 403);
      // a reader of the owning project reads but does not write
      assert.equal((await patch(READER_A, [{ op: 'add', path: '/x', value: '1' }])).statusCode, 403);
      assert.equal((await req('POST', '/v2/images', READER_A, { name: 'nope' })).statusCode, 403);
      // owner member writes; owner change is admin-only
      assert.equal((await patch(A, [{ op: 'add', path: '/x', value: '1' }])).statusCode, 200);
      assert.equal((await patch(A, [{ op: 'replace', path: '/owner', value: 'proj-b' }])).statusCode, 403);
      assert.equal((await patch(A, [{ op: 'replace', path: '/visibility', value: 'public' }])).statusCode, 403);
      assert.equal((await patch(ADMIN, [{ op: 'replace', path: '/visibility', value: 'public' }])).statusCode, 200);
      // non-admins cannot create images for other projects
      assert.equal((await req('POST', '/v2/images', A, { name: 'other', owner: 'proj-b' })).statusCode, 403);
      // no identity at all: nothing is readable
      assert.equal((await req('GET', '/v2/images', {})).statusCode, 403);
      // deactivate is owner/admin; a deactivated image's data is admin-only
      await h.app.inject({ method: 'PUT', url: `/v2/images/${img.id}/file`, headers: { ...OCTET_H, ...A }, payload: Buffer.alloc(10) });
      assert.equal((await req('POST', `/v2/images/${img.id}/actions/deactivate`, B)).statusCode, 403);
      assert.equal((await req('POST', `/v2/images/${img.id}/actions/deactivate`, A)).statusCode, 204);
      const dl = await req('GET', `/v2/images/${img.id}/file`, A);
      assert.equal(dl.statusCode, 403);
      assert.match(dl.json().message, /deactivated/);
      assert.equal((await req('GET', `/v2/images/${img.id}/file`, ADMIN)).statusCode, 200);
    });

    it('shares images through members with accept/reject/pending', async () => {
      const img = await create(A, { name: 'to-share' });
      const priv = await create(A, { name: 'not-shared', visibility: 'private' });
      const m = (who: Hdrs, method: string, suffix = '', body?: unknown) => req(method, `/v2/images/${img.id}/members${suffix}`, who, body);
      assert.equal((await req('POST', `/v2/images/${priv.id}/members`, A, { member: 'proj-b' })).statusCode, 403);
      // B cannot see it before being a member
      assert.equal((await req('GET', `/v2/images/${img.id}`, B)).statusCode, 404);
      let r = await m(A, 'POST', '', { member: 'proj-b' });
      assert.equal(r.statusCode, 200, r.body);
      assert.deepEqual(Object.keys(r.json()).sort(), ['created_at', 'image_id', 'member_id', 'schema', 'status', 'updated_at']);
      assert.equal(r.json().status, 'pending');
      assert.equal((await m(A, 'POST', '', { member: 'proj-b' })).statusCode, 409);
      assert.equal((await m(A, 'POST', '', {})).statusCode, 400);
      assert.equal((await m(B, 'POST', '', { member: 'proj-c' })).statusCode, 403);
      await m(A, 'POST', '', { member: 'proj-c' });
      // pending: B may show it but does not list it unless asking for pending
      assert.equal((await req('GET', `/v2/images/${img.id}`, B)).statusCode, 200);
      assert.ok(!(await ids(B)).includes('to-share'));
      assert.ok((await ids(B, '?member_status=pending')).includes('to-share'));
      assert.ok((await ids(B, '?member_status=all')).includes('to-share'));
      // the owner may not decide for the member
      assert.equal((await m(A, 'PUT', '/proj-b', { status: 'accepted' })).statusCode, 403);
      assert.equal((await m(B, 'PUT', '/proj-b', { status: 'maybe' })).statusCode, 400);
      assert.equal((await m(B, 'PUT', '/proj-c', { status: 'accepted' })).statusCode, 403);
      r = await m(B, 'PUT', '/proj-b', { status: 'accepted' });
      assert.equal(r.statusCode, 200);
      assert.equal(r.json().status, 'accepted');
      assert.ok((await ids(B)).includes('to-share'));
      // owner sees all members, a member only itself, a stranger nothing
      assert.equal((await m(A, 'GET')).json().members.length, 2);
      const bm = (await m(B, 'GET')).json();
      assert.deepEqual(bm.members.map((x: any) => x.member_id), ['proj-b']);
      assert.equal(bm.schema, '/v2/schemas/members');
      assert.equal((await m(B, 'GET', '/proj-b')).json().status, 'accepted');
      assert.equal((await m(B, 'GET', '/proj-c')).statusCode, 404);
      assert.equal((await m(as('proj-d'), 'GET')).statusCode, 404);
      // members may not modify the image
      assert.equal((await req('PATCH', `/v2/images/${img.id}`, B, [{ op: 'add', path: '/x', value: '1' }], PATCH_H)).statusCode, 403);
      r = await m(B, 'PUT', '/proj-b', { status: 'rejected' });
      assert.ok(!(await ids(B)).includes('to-share'));
      // member quota (3)
      await m(A, 'POST', '', { member: 'proj-e' });
      r = await m(A, 'POST', '', { member: 'proj-f' });
      assert.equal(r.statusCode, 413);
      // removal
      assert.equal((await m(B, 'DELETE', '/proj-c')).statusCode, 403);
      assert.equal((await m(A, 'DELETE', '/proj-c')).statusCode, 204);
      assert.equal((await m(A, 'DELETE', '/proj-c')).statusCode, 404);
      assert.equal((await req('GET', `/v2/images/${img.id}`, C)).statusCode, 404);
    });

    it('enforces per-project and per-image quotas with 413', async () => {
      const Q = as('proj-q');
      const tooMany = await req('POST', '/v2/images', Q, { name: 't', tags: ['1', '2', '3', '4'] });
      assert.equal(tooMany.statusCode, 413);
      assert.match(tooMany.json().message, /number of allowed image tags/);
      const props = await req('POST', '/v2/images', Q, { name: 'p', a: '1', b: '2', c: '3', d: '4' });
      assert.equal(props.statusCode, 413);
      assert.match(props.json().message, /number of allowed image properties/);
      const img = await create(Q, { name: 'q0', disk_format: 'raw', container_format: 'bare', a: '1', b: '2', c: '3', tags: ['1', '2', '3'] });
      assert.equal((await req('PATCH', `/v2/images/${img.id}`, Q, [{ op: 'add', path: '/d', value: '4' }], PATCH_H)).statusCode, 413);
      assert.equal((await req('PUT', `/v2/images/${img.id}/tags/4`, Q)).statusCode, 413);
      // total size: 10,000 bytes
      const up = (id: string, n: number) => h.app.inject({ method: 'PUT', url: `/v2/images/${id}/file`, headers: { ...OCTET_H, ...Q }, payload: Buffer.alloc(n) });
      assert.equal((await up(img.id, 8000)).statusCode, 204);
      const img2 = await create(Q, { name: 'q1', disk_format: 'raw', container_format: 'bare' });
      const r = await up(img2.id, 4000);
      assert.equal(r.statusCode, 413);
      assert.equal((await req('GET', `/v2/images/${img2.id}`, Q)).json().status, 'queued');
      assert.equal((await up(img2.id, 2000)).statusCode, 204);
      // image count: 8
      for (let i = 2; i < 8; i++) await create(Q, { name: `q${i}` });
      const over = await req('POST', '/v2/images', Q, { name: 'q8' });
      assert.equal(over.statusCode, 413);
      assert.match(over.json().message, /image_count_total/);
    });
  });
}
