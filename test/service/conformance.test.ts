// Runs scripts/conformance-openstack.sh (the real `openstack` client against a live
// `imgport serve`) when the client is installed; skipped otherwise.
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const hasClient = spawnSync('sh', ['-c', 'command -v openstack'], { encoding: 'utf8' }).status === 0;

it('the openstack client works against imgport serve', { skip: hasClient ? false : 'openstack client not installed', timeout: 600_000 }, () => {
  const env = { ...process.env };
  delete env.ENDPOINT;
  const r = spawnSync('bash', [path.join(root, 'scripts/conformance-openstack.sh')], { cwd: root, encoding: 'utf8', env });
  const out = `${r.stdout}\n${r.stderr}`;
  assert.equal(r.status, 0, out);
  assert.match(r.stdout, /^0 failure\(s\)$/m, out);
  assert.doesNotMatch(r.stdout, /^FAIL/m, out);
});
