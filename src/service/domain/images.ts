// Image lifecycle: create, read, list, update (JSON-patch semantics), delete,
// deactivate/reactivate, tags. Decides status rules, visibility and quotas; the
// repository does the I/O.
import { randomUUID } from 'node:crypto';
import { Conflict, Forbidden, InvalidArgument, NotFound } from '../../engine/errors.js';
import * as repo from '../db/repo.js';
import type { ImageRecord, ListQuery } from '../db/repo.js';
import type { ImageRow } from '../db/schema.js';
import type { RequestContext } from './context.js';
import { canSee, enforce, enforceCreate, enforceList, notFound } from './policy.js';
import { asDetail } from './errors.js';
import { checkImageCount, checkProperties, checkTags } from './quotas.js';
import { now, type Service } from './service.js';

/** Core attributes a client may set (validated by the HTTP layer). */
export interface CoreInput {
  name?: string | null;
  visibility?: string;
  protected?: boolean;
  os_hidden?: boolean;
  disk_format?: string | null;
  container_format?: string | null;
  min_ram?: number;
  min_disk?: number;
  owner?: string | null;
}
export interface CreateInput extends CoreInput { id?: string; tags: string[]; properties: Record<string, string> }

export const CORE_WRITABLE = ['name', 'visibility', 'protected', 'os_hidden', 'disk_format', 'container_format', 'min_ram', 'min_disk', 'owner', 'tags'] as const;

/** Loads an image the caller can see, plus whether the caller is one of its members. */
export async function load(svc: Service, ctx: RequestContext, id: string): Promise<{ img: ImageRecord; member: boolean }> {
  const img = await repo.getImage(svc.db, id);
  if (!img) throw notFound(id);
  let memberStatus: string | undefined;
  if (ctx.project !== null && img.owner !== ctx.project && img.visibility === 'shared') {
    memberStatus = (await repo.getMember(svc.db, id, ctx.project))?.status;
  }
  if (!canSee(ctx, img, memberStatus)) throw notFound(id);
  return { img, member: memberStatus !== undefined };
}

function checkVisibilityChange(ctx: RequestContext, img: ImageRecord, visibility: string | undefined, member: boolean): void {
  if (visibility === 'public' && img.visibility !== 'public') enforce(ctx, 'publicize_image', img, member);
  if (visibility === 'community' && img.visibility !== 'community') enforce(ctx, 'communitize_image', img, member);
}

export async function createImage(svc: Service, ctx: RequestContext, input: CreateInput): Promise<ImageRecord> {
  const owner = input.owner !== undefined ? input.owner : ctx.project;
  enforceCreate(ctx, owner);
  if (!ctx.isAdmin && input.owner !== undefined && input.owner !== ctx.project) {
    throw new Forbidden(`You are not permitted to create images owned by '${input.owner}'.`);
  }
  const id = input.id ?? randomUUID();
  const tags = [...new Set(input.tags)];
  checkProperties(svc, Object.keys(input.properties).length);
  checkTags(svc, tags.length);
  if (owner) await checkImageCount(svc, owner);
  const ts = now();
  const row: ImageRow = {
    id,
    name: input.name ?? null,
    status: 'queued',
    visibility: input.visibility ?? 'shared',
    protected: input.protected ? 1 : 0,
    os_hidden: input.os_hidden ? 1 : 0,
    checksum: null, os_hash_algo: null, os_hash_value: null,
    owner,
    size: null, virtual_size: null,
    min_ram: input.min_ram ?? 0,
    min_disk: input.min_disk ?? 0,
    disk_format: input.disk_format ?? null,
    container_format: input.container_format ?? null,
    created_at: ts, updated_at: ts,
    deleted: 0, deleted_at: null, location: null, staging_size: 0,
  };
  const probe = { ...row, properties: {}, tags: [] };
  checkVisibilityChange(ctx, { ...probe, visibility: 'shared' }, row.visibility, false);
  if (input.id !== undefined && await repo.idExists(svc.db, id)) throw new Conflict(`Image with identifier ${id} already exists!`);
  try {
    await repo.insertImage(svc.db, row, input.properties, tags);
  } catch (e) {
    if (await repo.idExists(svc.db, id)) throw new Conflict(`Image with identifier ${id} already exists!`);
    throw e;
  }
  return { ...row, properties: { ...input.properties }, tags };
}

export async function showImage(svc: Service, ctx: RequestContext, id: string): Promise<ImageRecord> {
  enforceList(ctx);
  return (await load(svc, ctx, id)).img;
}

export interface ListInput {
  limit: number;
  marker?: string;
  memberStatus: ListQuery['memberStatus'];
  visibility?: string;
  columns: ListQuery['columns'];
  properties: ListQuery['properties'];
  tags: string[];
  sort: ListQuery['sort'];
}

export async function listImages(svc: Service, ctx: RequestContext, q: ListInput): Promise<{ images: ImageRecord[]; nextMarker?: string }> {
  enforceList(ctx);
  let marker: ImageRow | undefined;
  if (q.marker !== undefined) {
    marker = await repo.getMarkerRow(svc.db, q.marker);
    // An invisible marker is as good as a missing one.
    let visible = !!marker;
    if (marker && !ctx.isAdmin) {
      const ms = ctx.project !== null && marker.visibility === 'shared' && marker.owner !== ctx.project
        ? (await repo.getMember(svc.db, marker.id, ctx.project))?.status : undefined;
      visible = canSee(ctx, { ...marker, properties: {}, tags: [] }, ms);
    }
    if (!visible) throw new InvalidArgument(`marker could not be found: ${q.marker}`);
  }
  const sort = [...q.sort];
  const dir = sort.length ? sort[sort.length - 1].dir : 'desc';
  for (const k of ['created_at', 'id'] as const) if (!sort.some((s) => s.key === k)) sort.push({ key: k, dir });
  const images = await repo.listImages(svc.db, {
    viewer: { project: ctx.project, admin: ctx.isAdmin },
    memberStatus: q.memberStatus, visibility: q.visibility, columns: q.columns, properties: q.properties, tags: q.tags,
    sort, marker, limit: q.limit,
  });
  const out: { images: ImageRecord[]; nextMarker?: string } = { images };
  if (images.length > 0 && images.length === q.limit) out.nextMarker = images[images.length - 1].id;
  return out;
}

export type PatchOp = { op: 'add' | 'replace' | 'remove'; path: string; value?: unknown };

/** Applies a validated JSON-patch (paths are single top-level names). */
export async function updateImage(svc: Service, ctx: RequestContext, id: string, ops: PatchOp[]): Promise<ImageRecord> {
  const { img, member } = await load(svc, ctx, id);
  enforce(ctx, 'modify_image', img, member);
  const next: ImageRecord = { ...img, properties: { ...img.properties }, tags: [...img.tags] };
  const set: Partial<ImageRow> = {};
  let tagsChanged = false;
  for (const ch of ops) {
    const key = ch.path;
    const isCore = (CORE_WRITABLE as readonly string[]).includes(key);
    if (ch.op === 'remove') {
      if (isCore) throw asDetail(new Forbidden(`Property ${key} may not be removed.`));
      if (!(key in next.properties)) throw asDetail(new Conflict(`Property ${key} does not exist.`));
      delete next.properties[key];
      continue;
    }
    if (isCore) {
      if (key === 'owner' && !ctx.isAdmin) throw asDetail(new Forbidden("Owner can't be updated by non admin."));
      if ((key === 'disk_format' || key === 'container_format') && next.status !== 'queued' && next.status !== 'importing' && ch.value !== (next as any)[key]) {
        throw new Forbidden(`Attribute ${key} can be only replaced for a queued image.`);
      }
      if (key === 'visibility') checkVisibilityChange(ctx, next, ch.value as string, member);
      if (key === 'tags') { next.tags = [...new Set(ch.value as string[])]; tagsChanged = true; continue; }
      const v = key === 'protected' || key === 'os_hidden' ? (ch.value ? 1 : 0) : ch.value;
      (next as any)[key] = v;
      (set as any)[key] = v;
      continue;
    }
    if (ch.op === 'replace' && !(key in next.properties)) throw asDetail(new Conflict(`Property ${key} does not exist.`));
    next.properties[key] = ch.value as string;
  }
  checkProperties(svc, Object.keys(next.properties).length, Object.keys(img.properties).length);
  if (tagsChanged) checkTags(svc, next.tags.length, img.tags.length);
  const setProps: Record<string, string> = {};
  for (const [k, v] of Object.entries(next.properties)) if (img.properties[k] !== v) setProps[k] = v;
  const delProps = Object.keys(img.properties).filter((k) => !(k in next.properties));
  next.updated_at = set.updated_at = now();
  const ok = await repo.updateImage(svc.db, id, { set, setProps, delProps, tags: tagsChanged ? next.tags : undefined });
  if (!ok) throw notFound(id);
  return next;
}

export async function deleteImage(svc: Service, ctx: RequestContext, id: string): Promise<void> {
  const { img, member } = await load(svc, ctx, id);
  enforce(ctx, 'delete_image', img, member);
  if (img.protected) throw new Forbidden(`Image ${id} is protected and cannot be deleted.`);
  const ts = now();
  const ok = await repo.setStatus(svc.db, id, { status: 'deleted', deleted: 1, deleted_at: ts, updated_at: ts, protected: 0 }, [img.status]);
  if (!ok) {
    // Status moved under us (an upload started or finished): retry once on fresh state.
    const again = await repo.getImage(svc.db, id);
    if (!again) throw notFound(id);
    if (again.protected) throw new Forbidden(`Image ${id} is protected and cannot be deleted.`);
    if (!(await repo.setStatus(svc.db, id, { status: 'deleted', deleted: 1, deleted_at: ts, updated_at: ts }, [again.status]))) throw new Conflict(`Image ${id} changed while being deleted; retry`);
    if (again.location) await svc.store.delete(again.location).catch(() => {});
    return;
  }
  if (img.location) await svc.store.delete(img.location).catch(() => {});
}

export async function deactivate(svc: Service, ctx: RequestContext, id: string): Promise<void> {
  const { img, member } = await load(svc, ctx, id);
  enforce(ctx, 'deactivate', img, member);
  if (img.status === 'deactivated') return;
  if (img.status !== 'active') throw new Forbidden(`Not allowed to deactivate image in status '${img.status}'`);
  if (!(await repo.setStatus(svc.db, id, { status: 'deactivated', updated_at: now() }, ['active']))) throw new Conflict(`Image ${id} changed status; retry`);
}

export async function reactivate(svc: Service, ctx: RequestContext, id: string): Promise<void> {
  const { img, member } = await load(svc, ctx, id);
  enforce(ctx, 'reactivate', img, member);
  if (img.status === 'active') return;
  if (img.status !== 'deactivated') throw new Forbidden(`Not allowed to reactivate image in status '${img.status}'`);
  if (!(await repo.setStatus(svc.db, id, { status: 'active', updated_at: now() }, ['deactivated']))) throw new Conflict(`Image ${id} changed status; retry`);
}

export async function addTag(svc: Service, ctx: RequestContext, id: string, tag: string): Promise<void> {
  const { img, member } = await load(svc, ctx, id);
  enforce(ctx, 'modify_image', img, member);
  if (img.tags.includes(tag)) return;
  checkTags(svc, img.tags.length + 1, img.tags.length);
  await repo.addTag(svc.db, id, tag, now());
}

export async function removeTag(svc: Service, ctx: RequestContext, id: string, tag: string): Promise<void> {
  const { img, member } = await load(svc, ctx, id);
  enforce(ctx, 'modify_image', img, member);
  if (!(await repo.removeTag(svc.db, id, tag, now()))) throw new NotFound(`Tag ${tag} not found`);
}
