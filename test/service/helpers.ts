// Test harness: a fresh service per suite on SQLite (temp dir) or PostgreSQL (a schema
// of its own in the local `test` database, dropped afterwards).
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { loadConfig, type DeepPartial, type ServiceConfig } from '../../src/service/config.js';
import { createService, type RunningService } from '../../src/service/index.js';
import { dropPgSchema } from '../../src/service/db/connect.js';
import type { Store } from '../../src/service/stores/store.js';

export const PG_URL = process.env.IMGPORT_TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
export const DRIVERS = (process.env.IMGPORT_TEST_DRIVERS ?? 'sqlite,postgres').split(',') as ('sqlite' | 'postgres')[];

export interface Harness extends RunningService {
  dir: string;
  cfg: ServiceConfig;
  /** Restarts the service on the same database and store (crash recovery tests). */
  restart(): Promise<void>;
  dispose(): Promise<void>;
}

export async function startHarness(driver: 'sqlite' | 'postgres', over: DeepPartial<ServiceConfig> = {}, opts: { store?: (cfg: ServiceConfig) => Store } = {}): Promise<Harness> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'imgport-svc-'));
  const schema = `imgport_t_${randomBytes(5).toString('hex')}`;
  const cfg = loadConfig({
    overrides: {
      port: 0,
      logLevel: 'silent',
      ...over,
      database: { driver, sqlitePath: path.join(dir, 'db.sqlite'), url: PG_URL, schema, poolSize: 4, ...(over.database ?? {}) },
      store: { dir: path.join(dir, 'images'), fsync: false, ...(over.store ?? {}) },
    },
  });
  let running: RunningService;
  try {
    running = await createService(cfg, { store: opts.store?.(cfg) });
  } catch (e) {
    // Leave nothing behind when the service cannot start (e.g. PostgreSQL unreachable).
    rmSync(dir, { recursive: true, force: true });
    if (driver === 'postgres') await dropPgSchema(PG_URL, schema).catch(() => {});
    throw e;
  }
  const h: Harness = {
    ...running,
    dir,
    cfg,
    async restart() {
      await running.close();
      running = await createService(cfg, { store: opts.store?.(cfg) });
      h.svc = running.svc; h.app = running.app; h.close = running.close;
    },
    async dispose() {
      await running.close().catch(() => {});
      if (driver === 'postgres') await dropPgSchema(PG_URL, schema);
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return h;
}

export type Hdrs = Record<string, string>;
export const JSON_H: Hdrs = { 'content-type': 'application/json', accept: 'application/json' };
export const PATCH_H: Hdrs = { 'content-type': 'application/openstack-images-v2.1-json-patch', accept: 'application/json' };
export const OCTET_H: Hdrs = { 'content-type': 'application/octet-stream', accept: 'application/json' };

/** Identity headers for trusted-headers mode. */
export function as(project: string, roles = 'member,reader', user = `u-${project}`): Hdrs {
  return { 'x-project-id': project, 'x-user-id': user, 'x-roles': roles };
}

/** A minimal valid qcow2 v3 header for `virtualSize` bytes, padded to `len`. */
export function qcow2Bytes(virtualSize: number, len = 1024 * 1024): Buffer {
  const b = Buffer.alloc(len);
  b.writeUInt32BE(0x514649fb, 0);
  b.writeUInt32BE(3, 4);
  b.writeUInt32BE(16, 20); // cluster bits
  b.writeBigUInt64BE(BigInt(virtualSize), 24);
  b.writeUInt32BE(Math.max(1, Math.ceil(virtualSize / (65536 * 8192))), 36); // l1 size
  b.writeBigUInt64BE(0x30000n, 40);
  b.writeBigUInt64BE(0x10000n, 48);
  b.writeUInt32BE(1, 56);
  b.writeUInt32BE(4, 96); // refcount order
  b.writeUInt32BE(104, 100); // header length
  return b;
}
