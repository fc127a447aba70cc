// Starting and stopping the image service: opens the database and store, cleans up
// after a crash (uploads left 'saving' go back to 'queued'; temporary and orphaned
// files are removed), builds the HTTP app.
import type { FastifyInstance } from 'fastify';
import type { ServiceConfig } from './config.js';
import { openDb } from './db/connect.js';
import * as repo from './db/repo.js';
import { startMaintenance } from './db/maintenance.js';
import { HashPool } from './domain/hashing.js';
import { now, type Service } from './domain/service.js';
import { FileStore } from './stores/file.js';
import type { Store } from './stores/store.js';
import { buildApp } from './http/app.js';

export interface RunningService {
  svc: Service;
  app: FastifyInstance;
  close(): Promise<void>;
}

export async function createService(cfg: ServiceConfig, opts: { store?: Store } = {}): Promise<RunningService> {
  const db = await openDb(cfg.database);
  const store = opts.store ?? new FileStore(cfg.store.dir, cfg.store.fsync);
  await store.init();
  await repo.resetSaving(db, now());
  await store.sweep(await repo.allLocations(db));
  const stopMaintenance = await startMaintenance(db, cfg.database.driver);
  const hashes = new HashPool(['md5', cfg.hashAlgo]);
  const svc: Service = { cfg, db, store, hashes };
  const app = buildApp(svc);
  await app.ready();
  return {
    svc,
    app,
    async close() {
      await app.close();
      stopMaintenance();
      await hashes.close();
      await db.destroy();
    },
  };
}

/** Creates the service and listens on cfg.host:cfg.port; returns the bound address. */
export async function startService(cfg: ServiceConfig, opts: { store?: Store } = {}): Promise<RunningService & { url: string }> {
  const s = await createService(cfg, opts);
  const addr = await s.app.listen({ host: cfg.host, port: cfg.port });
  return { ...s, url: addr };
}

export { loadConfig } from './config.js';
