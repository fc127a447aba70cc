// Config layering: defaults < file (JSON/YAML) < IMGPORT_* environment < overrides.
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { DEFAULTS, loadConfig } from '../../src/service/config.js';

it('has the documented embedded defaults', () => {
  const c = loadConfig();
  assert.equal(c.host, '127.0.0.1');
  assert.equal(c.port, 9292);
  assert.equal(c.auth, 'none');
  assert.equal(c.database.driver, 'sqlite');
  assert.equal(c.database.sqlitePath, path.join('data', 'imgport.sqlite'));
  assert.equal(c.store.dir, path.join('data', 'images'));
  assert.equal(c.hashAlgo, 'sha512');
  assert.equal(c.apiLimitMax, 1000);
  assert.equal(c.limitParamDefault, 25);
  assert.deepEqual(loadConfig(), DEFAULTS);
});

it('layers file, environment and overrides, and validates', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'imgport-cfg-'));
  try {
    const yml = path.join(dir, 'c.yaml');
    writeFileSync(yml, 'port: 9000\nauth: trusted-headers\nquotas:\n  imageCount: 5\nstore:\n  dir: /srv/images\n');
    let c = loadConfig({ file: yml });
    assert.equal(c.port, 9000);
    assert.equal(c.auth, 'trusted-headers');
    assert.equal(c.quotas.imageCount, 5);
    assert.equal(c.quotas.tagCount, DEFAULTS.quotas.tagCount);
    assert.equal(c.store.dir, '/srv/images');
    c = loadConfig({ file: yml, env: { IMGPORT_PORT: '9100', IMGPORT_DB_URL: 'postgres://x@h/db', IMGPORT_HASH_ALGO: 'sha256' } });
    assert.equal(c.port, 9100);
    assert.equal(c.database.driver, 'postgres');
    assert.equal(c.database.url, 'postgres://x@h/db');
    assert.equal(c.hashAlgo, 'sha256');
    c = loadConfig({ env: { IMGPORT_CONFIG: yml, IMGPORT_PORT: '9100' }, overrides: { port: 1 } });
    assert.equal(c.port, 1);
    const json = path.join(dir, 'c.json');
    writeFileSync(json, JSON.stringify({ hashAlgo: 'sha384' }));
    assert.equal(loadConfig({ file: json }).hashAlgo, 'sha384');
    assert.throws(() => loadConfig({ env: { IMGPORT_AUTH: 'keystone' } }), /auth/);
    assert.throws(() => loadConfig({ env: { IMGPORT_PORT: 'abc' } }), /IMGPORT_PORT/);
  } finally { rmSync(dir, { recursive: true, force: true }); }
});
