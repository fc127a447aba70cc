// /v2/images: create, list, show, update (JSON-patch), delete, actions, tags.
// Validates and parses requests, calls the domain, serializes in Glance's shape.
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Service } from '../domain/service.js';
import * as images from '../domain/images.js';
import type { ColumnFilter, Cmp } from '../db/repo.js';
import type { ImageRow } from '../db/schema.js';
import { contextFor } from './context.js';
import { HttpError } from './errors.js';
import { asDetail } from '../domain/errors.js';
import { mediaType, readJson } from './body.js';
import { imageView } from './serialize.js';
import { IMAGE_PROPERTIES, violation } from './schemas.js';

const DISALLOWED = ['direct_url', 'self', 'file', 'schema', 'stores'];
const READONLY = ['created_at', 'updated_at', 'status', 'checksum', 'size', 'virtual_size', 'direct_url', 'self', 'file', 'schema', 'id', 'os_hash_algo', 'os_hash_value'];
const RESERVED = ['location', 'deleted', 'deleted_at'];
const RESERVED_NS = 'os_glance';
const SORT_KEYS = ['name', 'status', 'container_format', 'disk_format', 'size', 'id', 'created_at', 'updated_at'];
const PATCH_TYPES: Record<string, 4 | 10> = {
  'application/openstack-images-v2.0-json-patch': 4,
  'application/openstack-images-v2.1-json-patch': 10,
};

const schemaError = (msg: string) => new HttpError(400, `Provided object does not match schema 'image': ${msg}`);
const reserved = (k: string) => RESERVED.includes(k) || k.startsWith(RESERVED_NS);

export function parseCreate(body: unknown): images.CreateInput {
  if (body === undefined) throw new HttpError(400, 'Body expected in request.');
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw schemaError(`${JSON.stringify(body)} is not of type 'object'`);
  }
  const b = body as Record<string, unknown>;
  for (const k of DISALLOWED) if (k in b) throw new HttpError(403, `Attribute '${k}' is read-only.`);
  for (const [k, v] of Object.entries(b)) {
    const why = violation(k, v);
    if (why) throw schemaError(why);
  }
  for (const k of READONLY) if (k !== 'id' && k in b) throw new HttpError(403, `Attribute '${k}' is read-only.`);
  if ('locations' in b) throw new HttpError(403, "Attribute 'locations' is read-only.");
  const input: images.CreateInput = { tags: (b.tags as string[] | undefined) ?? [], properties: {} };
  for (const [k, v] of Object.entries(b)) {
    if (k === 'tags') continue;
    if (k === 'id') { input.id = (v as string).toLowerCase(); continue; }
    if ((images.CORE_WRITABLE as readonly string[]).includes(k)) { (input as any)[k] = v; continue; }
    if (k.length > 255) throw new HttpError(400, 'Custom property should not be greater than 255 characters.');
    if (reserved(k)) throw asDetail(new HttpError(403, `Attribute '${k}' is reserved.`));
    if (v === null) continue; // nullable extra props (kernel_id...) stored as absent
    input.properties[k] = v as string;
  }
  return input;
}

function decodePointer(p: unknown): string[] {
  if (typeof p !== 'string') throw new HttpError(400, "Unable to find 'path' in JSON Schema change");
  if (!p.startsWith('/')) throw new HttpError(400, `Pointer \`${p}\` does not start with "/".`);
  if (/\/\s*?\//.test(p.slice(1))) throw new HttpError(400, `Pointer \`${p}\` contains adjacent "/".`);
  if (p.length > 1 && p.endsWith('/')) throw new HttpError(400, `Pointer \`${p}\` end with "/".`);
  if (/~[^01]/.test(p) || p.endsWith('~')) throw new HttpError(400, `Pointer \`${p}\` contains "~" not part of a recognized escape sequence.`);
  return p.slice(1).split('/').map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~').trim());
}

export function parsePatch(contentType: string, body: unknown): images.PatchOp[] {
  const version = PATCH_TYPES[contentType];
  if (!version) {
    throw new HttpError(415, `The request media type ${contentType || 'None'} is not supported by this server.`, { 'Accept-Patch': Object.keys(PATCH_TYPES).sort().join(', ') });
  }
  if (body === undefined) throw new HttpError(400, 'Body expected in request.');
  if (!Array.isArray(body)) throw new HttpError(400, 'Request body must be a JSON array of operation objects.');
  const ops: images.PatchOp[] = [];
  for (const raw of body) {
    if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw new HttpError(400, 'Operations must be JSON objects.');
    const r = raw as Record<string, unknown>;
    let op: string;
    let pointer: unknown;
    if (version === 10) {
      if (r.op === undefined) throw new HttpError(400, 'Unable to find `op` in JSON Schema change. It must be one of the following: add, remove, replace.');
      if (!['add', 'remove', 'replace'].includes(r.op as string)) throw new HttpError(400, `Invalid operation: \`${String(r.op)}\`. It must be one of the following: add, remove, replace.`);
      op = r.op as string;
      pointer = r.path;
    } else {
      const present = ['add', 'remove', 'replace'].filter((k) => k in r);
      if (present.length > 1) throw new HttpError(400, 'Operations must contain only one member named "add", "remove", or "replace".');
      if (present.length === 0) throw new HttpError(400, 'Operation objects must contain exactly one member named "add", "remove", or "replace".');
      op = present[0];
      pointer = r[op];
    }
    const path = decodePointer(pointer);
    const root = path[0];
    if (root === 'locations') throw new HttpError(403, "It's not allowed to update locations if locations are invisible.");
    if (path.length !== 1) throw new HttpError(400, `Invalid JSON pointer for this resource: '/${path.join('/')}'`);
    if (op !== 'remove' && !('value' in r)) throw new HttpError(400, `Operation "${op}" requires a member named "value".`);
    if (READONLY.includes(root)) throw new HttpError(403, `Attribute '${root}' is read-only.`);
    if (reserved(root)) throw new HttpError(403, `Attribute '${root}' is reserved.`);
    if (op !== 'remove') {
      const why = violation(root, r.value);
      if (why) throw schemaError(why);
      if (!(root in IMAGE_PROPERTIES) && root.length > 255) throw new HttpError(400, 'Custom property should not be greater than 255 characters.');
    }
    ops.push({ op: op as images.PatchOp['op'], path: root, value: r.value });
  }
  return ops;
}

// ---- list query -------------------------------------------------------------------

type Query = Record<string, string | string[] | undefined>;
const all = (v: string | string[] | undefined): string[] => (v === undefined ? [] : Array.isArray(v) ? v : [v]);
const last = (v: string | string[] | undefined): string | undefined => { const a = all(v); return a.length ? a[a.length - 1] : undefined; };

const NUMERIC: (keyof ImageRow)[] = ['size', 'virtual_size', 'min_ram', 'min_disk'];
const EQ_COLUMNS: (keyof ImageRow)[] = ['owner', 'checksum', 'os_hash_value', 'os_hash_algo', 'size', 'virtual_size', 'min_ram', 'min_disk'];
const OP_COLUMNS: (keyof ImageRow)[] = ['name', 'id', 'status', 'container_format', 'disk_format'];

function isIsoTime(s: string): boolean {
  return /^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?(Z|[+-]\d{2}:?\d{2})?$/.test(s) && !Number.isNaN(Date.parse(s));
}

function splitOp(expr: string): [string, string] {
  const i = expr.indexOf(':');
  if (i < 0 || isIsoTime(expr)) return ['eq', expr];
  return [expr.slice(0, i), expr.slice(i + 1)];
}

/** Comma-separated values; double quotes protect commas (Glance's split_filter_value_for_quotes). */
function splitList(s: string): string[] {
  const out: string[] = [];
  let cur = '', quoted = false;
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (c === '"') { quoted = !quoted; continue; }
    if (c === '\\' && s[i + 1] === '"') { cur += '"'; i++; continue; }
    if (c === ',' && !quoted) { out.push(cur); cur = ''; continue; }
    cur += c;
  }
  out.push(cur);
  return out;
}

function toIso(s: string, key: string): string {
  const t = Date.parse(/[zZ]|[+-]\d{2}:?\d{2}$/.test(s) || !s.includes('T') ? s : s + 'Z');
  if (Number.isNaN(t)) throw new HttpError(400, `Bad "${key}" query filter format. Use ISO 8601 DateTime notation.`);
  return new Date(t).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

export function parseList(q: Query, cfg: Service['cfg']): images.ListInput {
  const params: Query = { ...q };
  const take = (k: string) => { const v = params[k]; delete params[k]; return v; };
  const limitRaw = last(take('limit'));
  let limit = cfg.limitParamDefault;
  if (limitRaw !== undefined) {
    if (!/^-?\d+$/.test(limitRaw.trim())) throw new HttpError(400, 'limit param must be an integer');
    limit = Number(limitRaw);
    if (limit < 0) throw new HttpError(400, 'limit param must be positive');
  }
  limit = Math.min(limit, cfg.apiLimitMax);
  const marker = last(take('marker'));
  const memberStatus = (last(take('member_status')) ?? 'accepted') as images.ListInput['memberStatus'];
  if (!['pending', 'accepted', 'rejected', 'all'].includes(memberStatus)) throw new HttpError(400, `Invalid status: ${memberStatus}`);
  const tags = all(take('tag')).map((t) => t.trim());

  // sorting: sort=key:dir,... or sort_key=..&sort_dir=..
  const sort: images.ListInput['sort'] = [];
  const validKey = (k: string) => {
    if (!SORT_KEYS.includes(k)) throw new HttpError(400, `Invalid sort key: ${k}. It must be one of the following: ${SORT_KEYS.join(', ')}.`);
    return k as keyof ImageRow;
  };
  const validDir = (d: string) => {
    if (d !== 'asc' && d !== 'desc') throw new HttpError(400, `Invalid sort direction: ${d}`);
    return d;
  };
  const sortNew = all(take('sort'));
  const sortKeys = all(take('sort_key'));
  const sortDirs = all(take('sort_dir'));
  if (sortNew.length) {
    if (sortKeys.length || sortDirs.length) throw new HttpError(400, 'Old and new sorting syntax cannot be combined');
    for (const part of sortNew[sortNew.length - 1].trim().split(',')) {
      const [k, d] = part.split(':');
      sort.push({ key: validKey(k.trim()), dir: validDir((d ?? 'desc').trim() || 'desc') });
    }
  } else {
    const keys = sortKeys.map((k) => validKey(k.trim()));
    const dirs = sortDirs.map((d) => validDir(d.trim()));
    if (dirs.length > 1 && dirs.length !== keys.length) throw new HttpError(400, 'Number of sort dirs does not match the number of sort keys');
    const ks = keys.length ? keys : ['created_at' as keyof ImageRow];
    ks.forEach((k, i) => sort.push({ key: k, dir: dirs.length > 1 ? dirs[i] : dirs[0] ?? 'desc' }));
  }

  const visibility = last(take('visibility'));
  if (visibility !== undefined && !['community', 'public', 'private', 'shared', 'all'].includes(visibility)) throw new HttpError(400, `Invalid visibility value: ${visibility}`);
  if (params['changes-since'] !== undefined) throw new HttpError(400, 'The "changes-since" filter is no longer available on v2.');

  const columns: ColumnFilter[] = [];
  const osHidden = (last(take('os_hidden')) ?? 'false').toLowerCase();
  if (osHidden !== 'true' && osHidden !== 'false') throw new HttpError(400, `Invalid value '${osHidden}' for 'os_hidden' filter. Valid values are 'true' or 'false'.`);
  columns.push({ column: 'os_hidden', op: 'eq', value: osHidden === 'true' ? 1 : 0 });
  const prot = last(take('protected'));
  if (prot !== undefined) {
    if (prot !== 'true' && prot !== 'false') throw new HttpError(400, `Invalid value '${prot}' for 'protected' filter. Valid values are 'true' or 'false'.`);
    columns.push({ column: 'protected', op: 'eq', value: prot === 'true' ? 1 : 0 });
  }
  const properties: images.ListInput['properties'] = [];
  for (const [k, raw] of Object.entries(params)) {
    const v = last(raw);
    if (v === undefined) continue;
    if (k.endsWith('_min') || k.endsWith('_max')) {
      const col = k.slice(0, -4) as keyof ImageRow;
      if (!/^-?\d+$/.test(v.trim())) throw new HttpError(400, 'Unable to filter on a range with a non-numeric value.');
      if (!NUMERIC.includes(col)) throw new HttpError(400, `Invalid filter: ${k}`);
      columns.push({ column: col, op: k.endsWith('_min') ? 'gte' : 'lte', value: Number(v) });
    } else if (k === 'created_at' || k === 'updated_at') {
      const [op, val] = splitOp(v);
      if (!['eq', 'neq', 'gt', 'gte', 'lt', 'lte'].includes(op)) throw new HttpError(400, `Unable to filter by unknown operator '${op}'.`);
      columns.push({ column: k, op: op as Cmp, value: toIso(val, k) });
    } else if ((OP_COLUMNS as string[]).includes(k)) {
      const [op, val] = splitOp(v);
      if (op === 'in') columns.push({ column: k as keyof ImageRow, op: 'in', value: splitList(val) });
      else if (op === 'eq') columns.push({ column: k as keyof ImageRow, op: 'eq', value: val });
      else throw new HttpError(400, `Unable to filter by unknown operator '${op}'.`);
    } else if ((EQ_COLUMNS as string[]).includes(k)) {
      if (NUMERIC.includes(k as keyof ImageRow)) {
        if (!/^-?\d+$/.test(v.trim())) throw new HttpError(400, `Invalid value '${v}' for '${k}' filter.`);
        columns.push({ column: k as keyof ImageRow, op: 'eq', value: Number(v) });
      } else columns.push({ column: k as keyof ImageRow, op: 'eq', value: v });
    } else {
      const [op, val] = v.startsWith('in:') ? ['in', v.slice(3)] : ['eq', v];
      properties.push(op === 'in' ? { name: k, op: 'in', value: splitList(val) } : { name: k, op: 'eq', value: val });
    }
  }
  return { limit, marker, memberStatus, visibility, columns, properties, tags, sort };
}

function nextQuery(req: FastifyRequest, marker: string): { first: string; next: string } {
  const i = req.url.indexOf('?');
  const sp = new URLSearchParams(i >= 0 ? req.url.slice(i + 1) : '');
  sp.delete('marker');
  const first = sp.toString();
  sp.append('marker', marker);
  return { first: first ? `/v2/images?${first}` : '/v2/images', next: `/v2/images?${sp.toString()}` };
}

export function registerImages(app: FastifyInstance, svc: Service): void {
  const cfg = svc.cfg;
  app.post('/v2/images', async (req, reply) => {
    const ctx = contextFor(cfg, req);
    const input = parseCreate(await readJson(req, cfg.bodyLimit));
    const img = await images.createImage(svc, ctx, input);
    return reply.code(201).header('Location', `${baseUrl(req, cfg)}/v2/images/${img.id}`).send(imageView(img));
  });

  app.get('/v2/images', async (req) => {
    const ctx = contextFor(cfg, req);
    const q = parseList(req.query as Query, cfg);
    const r = await images.listImages(svc, ctx, q);
    const links = nextQuery(req, r.nextMarker ?? '');
    const body: Record<string, unknown> = { images: r.images.map(imageView), first: links.first, schema: '/v2/schemas/images' };
    if (r.nextMarker) body.next = links.next;
    return body;
  });

  app.get<{ Params: { id: string } }>('/v2/images/:id', async (req) => {
    return imageView(await images.showImage(svc, contextFor(cfg, req), req.params.id));
  });

  app.patch<{ Params: { id: string } }>('/v2/images/:id', async (req) => {
    const ct = mediaType(req);
    if (!PATCH_TYPES[ct]) parsePatch(ct, undefined);
    const ops = parsePatch(ct, await readJson(req, cfg.bodyLimit));
    return imageView(await images.updateImage(svc, contextFor(cfg, req), req.params.id, ops));
  });

  app.delete<{ Params: { id: string } }>('/v2/images/:id', async (req, reply) => {
    await images.deleteImage(svc, contextFor(cfg, req), req.params.id);
    return reply.code(204).send();
  });

  app.post<{ Params: { id: string } }>('/v2/images/:id/actions/deactivate', async (req, reply) => {
    await images.deactivate(svc, contextFor(cfg, req), req.params.id);
    return reply.code(204).send();
  });
  app.post<{ Params: { id: string } }>('/v2/images/:id/actions/reactivate', async (req, reply) => {
    await images.reactivate(svc, contextFor(cfg, req), req.params.id);
    return reply.code(204).send();
  });

  app.put<{ Params: { id: string; tag: string } }>('/v2/images/:id/tags/:tag', async (req, reply) => {
    const tag = req.params.tag;
    if (tag.length > 255) throw new HttpError(400, `Could not update image: Provided object does not match schema 'image': '${tag}' is too long`);
    await images.addTag(svc, contextFor(cfg, req), req.params.id, tag);
    return reply.code(204).send();
  });
  app.delete<{ Params: { id: string; tag: string } }>('/v2/images/:id/tags/:tag', async (req, reply) => {
    await images.removeTag(svc, contextFor(cfg, req), req.params.id, req.params.tag);
    return reply.code(204).send();
  });
}

export function baseUrl(req: FastifyRequest, cfg: Service['cfg']): string {
  if (cfg.publicEndpoint) return cfg.publicEndpoint.replace(/\/+$/, '');
  return `${req.protocol}://${req.headers.host ?? `${cfg.host}:${cfg.port}`}`;
}
