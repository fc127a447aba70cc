// The service's dependencies in one object, built once at start-up and handed to every
// domain function (no globals, so tests run several services side by side).
import type { ServiceConfig } from '../config.js';
import type { Db } from '../db/connect.js';
import type { Store } from '../stores/store.js';
import type { HashPool } from './hashing.js';

export interface Service {
  cfg: ServiceConfig;
  db: Db;
  store: Store;
  hashes: HashPool;
}

/** Glance's timestamp precision (seconds, UTC, 'Z'). */
export function now(): string {
  return new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
}
