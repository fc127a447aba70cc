// The image service's one typed config: embedded defaults, overridden by a JSON/YAML
// file, then by IMGPORT_* environment variables, then by explicit overrides (CLI flags,
// tests). The same object is passed everywhere; nothing reads process.env after this.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parse as parseYaml } from 'yaml';
import { InvalidArgument } from '../engine/errors.js';

export type AuthMode = 'none' | 'trusted-headers';
export type HashAlgo = 'sha512' | 'sha384' | 'sha256' | 'sha1' | 'md5';

export interface Quotas {
  /** -1 means unlimited, as Glance's unified limits. */
  imageCount: number;          // image_count_total
  imageSize: number;           // image_size_total, bytes
  stagingSize: number;         // image_stage_total, bytes
  tagCount: number;            // image_count_uploading is separate; this is tags per image
  propertyCount: number;       // custom properties per image (Glance image_property_quota)
  uploadingCount: number;      // image_count_uploading
}

export interface ServiceConfig {
  host: string;
  port: number;
  /** Base URL used in links when set; otherwise derived from the request's Host. */
  publicEndpoint: string | null;
  auth: AuthMode;
  /** Identity every request acts as when auth is 'none'. */
  defaultProject: string;
  defaultUser: string;
  database: {
    /** 'sqlite' or 'postgres'. */
    driver: 'sqlite' | 'postgres';
    /** SQLite: file path (':memory:' allowed). */
    sqlitePath: string;
    /** PostgreSQL: connection string. */
    url: string;
    /** PostgreSQL schema (search_path) to use; created when missing. */
    schema: string;
    poolSize: number;
  };
  store: {
    driver: 'file';
    /** Directory image files live in. */
    dir: string;
    /** Whether to fsync file and directory after an upload. */
    fsync: boolean;
  };
  hashAlgo: HashAlgo;
  /** Glance's api_limit_max and limit_param_default. */
  apiLimitMax: number;
  limitParamDefault: number;
  /** Largest accepted image, bytes (Glance image_size_cap, 1 TiB). */
  imageSizeCap: number;
  /** Glance's image_member_quota, image_tag_quota, image_property_quota, image_location_quota. */
  memberQuota: number;
  quotas: Quotas;
  /** Whether unified-limit style per-project quotas are enforced (Glance use_keystone_limits). */
  enforceQuotas: boolean;
  inspection: {
    enabled: boolean;
    /** Refuse uploads whose bytes do not match the declared disk_format. */
    requireFormatMatch: boolean;
    maxVirtualSize?: number;
    allowBackingFile: boolean;
    allowDataFile: boolean;
  };
  /** Largest request header section (node's maxHeaderSize). */
  maxHeaderSize: number;
  /** Largest JSON body in bytes. */
  bodyLimit: number;
  logLevel: 'silent' | 'error' | 'warn' | 'info' | 'debug';
}

export const DEFAULTS: ServiceConfig = {
  host: '127.0.0.1',
  port: 9292,
  publicEndpoint: null,
  auth: 'none',
  defaultProject: 'admin',
  defaultUser: 'admin',
  database: {
    driver: 'sqlite',
    sqlitePath: path.join('data', 'imgport.sqlite'),
    url: 'postgres://postgres@127.0.0.1:5432/imgport',
    schema: 'public',
    poolSize: 10,
  },
  store: { driver: 'file', dir: path.join('data', 'images'), fsync: true },
  hashAlgo: 'sha512',
  apiLimitMax: 1000,
  limitParamDefault: 25,
  imageSizeCap: 1024 ** 4,
  memberQuota: 128,
  quotas: {
    imageCount: -1,
    imageSize: -1,
    stagingSize: -1,
    tagCount: 128,
    propertyCount: 128,
    uploadingCount: -1,
  },
  enforceQuotas: true,
  inspection: { enabled: true, requireFormatMatch: true, allowBackingFile: false, allowDataFile: false },
  maxHeaderSize: 16 * 1024,
  bodyLimit: 1024 * 1024,
  logLevel: 'warn',
};

export type DeepPartial<T> = { [K in keyof T]?: T[K] extends object ? DeepPartial<T[K]> : T[K] };

function merge<T>(base: T, over: DeepPartial<T> | undefined): T {
  if (!over) return base;
  const out: any = Array.isArray(base) ? [...(base as any)] : { ...base };
  for (const [k, v] of Object.entries(over)) {
    if (v === undefined) continue;
    const b = (base as any)[k];
    out[k] = b && typeof b === 'object' && !Array.isArray(b) && v && typeof v === 'object' ? merge(b, v as any) : v;
  }
  return out;
}

/** Environment variables understood (documented in README "Image service"). */
export const ENV_VARS: Record<string, (c: DeepPartial<ServiceConfig>, v: string) => void> = {
  IMGPORT_HOST: (c, v) => { c.host = v; },
  IMGPORT_PORT: (c, v) => { c.port = int(v, 'IMGPORT_PORT'); },
  IMGPORT_PUBLIC_ENDPOINT: (c, v) => { c.publicEndpoint = v; },
  IMGPORT_AUTH: (c, v) => { c.auth = v as AuthMode; },
  IMGPORT_DB_DRIVER: (c, v) => { (c.database ??= {}).driver = v as 'sqlite'; },
  IMGPORT_DB_PATH: (c, v) => { (c.database ??= {}).sqlitePath = v; },
  IMGPORT_DB_URL: (c, v) => { (c.database ??= {}).url = v; if (!c.database.driver) c.database.driver = 'postgres'; },
  IMGPORT_DB_SCHEMA: (c, v) => { (c.database ??= {}).schema = v; },
  IMGPORT_STORE_DIR: (c, v) => { (c.store ??= {}).dir = v; },
  IMGPORT_STORE_FSYNC: (c, v) => { (c.store ??= {}).fsync = v !== '0' && v !== 'false'; },
  IMGPORT_HASH_ALGO: (c, v) => { c.hashAlgo = v as HashAlgo; },
  IMGPORT_API_LIMIT_MAX: (c, v) => { c.apiLimitMax = int(v, 'IMGPORT_API_LIMIT_MAX'); },
  IMGPORT_LOG_LEVEL: (c, v) => { c.logLevel = v as 'warn'; },
  IMGPORT_DATA_DIR: (c, v) => {
    (c.database ??= {}).sqlitePath = path.join(v, 'imgport.sqlite');
    (c.store ??= {}).dir = path.join(v, 'images');
  },
};

function int(v: string, name: string): number {
  const n = Number(v);
  if (!Number.isInteger(n)) throw new InvalidArgument(`${name}: not an integer: ${v}`);
  return n;
}

export function loadConfigFile(file: string): DeepPartial<ServiceConfig> {
  const text = readFileSync(file, 'utf8');
  const parsed = /\.ya?ml$/i.test(file) ? parseYaml(text) : JSON.parse(text);
  if (!parsed || typeof parsed !== 'object') throw new InvalidArgument(`${file}: config must be an object`);
  return parsed as DeepPartial<ServiceConfig>;
}

/** defaults ← file (IMGPORT_CONFIG or `file`) ← environment ← overrides; then validated. */
export function loadConfig(opts: { file?: string; env?: NodeJS.ProcessEnv; overrides?: DeepPartial<ServiceConfig> } = {}): ServiceConfig {
  const env = opts.env ?? {};
  let cfg = DEFAULTS;
  const file = opts.file ?? env.IMGPORT_CONFIG;
  if (file) cfg = merge(cfg, loadConfigFile(file));
  const fromEnv: DeepPartial<ServiceConfig> = {};
  for (const [name, apply] of Object.entries(ENV_VARS)) {
    const v = env[name];
    if (v !== undefined && v !== '') apply(fromEnv, v);
  }
  cfg = merge(cfg, fromEnv);
  cfg = merge(cfg, opts.overrides);
  validate(cfg);
  return cfg;
}

function validate(c: ServiceConfig): void {
  if (c.auth !== 'none' && c.auth !== 'trusted-headers') throw new InvalidArgument(`config auth: must be 'none' or 'trusted-headers', got ${c.auth}`);
  if (c.database.driver !== 'sqlite' && c.database.driver !== 'postgres') throw new InvalidArgument(`config database.driver: must be sqlite or postgres`);
  if (!['sha512', 'sha384', 'sha256', 'sha1', 'md5'].includes(c.hashAlgo)) throw new InvalidArgument(`config hashAlgo: unsupported ${c.hashAlgo}`);
  if (!(c.port >= 0 && c.port < 65536)) throw new InvalidArgument(`config port: out of range`);
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(c.database.schema)) throw new InvalidArgument(`config database.schema: not an identifier`);
}
