// The upload hashing threads: digests match node:crypto for interleaved sessions.
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { HashPool } from '../../src/service/domain/hashing.js';

it('hashes several interleaved sessions on shared buffers', async () => {
  const pool = new HashPool(['md5', 'sha512']);
  try {
    const inputs = [randomBytes(3 * 65536 + 5), randomBytes(65536), Buffer.alloc(0)];
    const results = await Promise.all(inputs.map(async (data) => {
      const sab = new SharedArrayBuffer(65536 * 2);
      const view = new Uint8Array(sab);
      const pending = [0, 0];
      let wake: (() => void) | null = null;
      const s = pool.session(sab, (slot) => { pending[slot]--; wake?.(); }, (e) => { throw e; });
      for (let off = 0, slot = 0; off < data.length; off += 65536, slot ^= 1) {
        while (pending[slot] > 0) await new Promise<void>((r) => { wake = r; });
        const part = data.subarray(off, off + 65536);
        view.set(part, slot * 65536);
        pending[slot] = s.ways;
        s.push(slot, slot * 65536, part.length);
      }
      return s.finish();
    }));
    results.forEach(([md5, sha], i) => {
      assert.equal(md5, createHash('md5').update(inputs[i]).digest('hex'));
      assert.equal(sha, createHash('sha512').update(inputs[i]).digest('hex'));
    });
  } finally { await pool.close(); }
});
