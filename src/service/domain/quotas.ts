// Per-project limits in the manner of Glance's unified limits (image_count_total,
// image_size_total, image_stage_total, image_count_uploading) plus its per-image
// tag/property quotas. -1 means unlimited. All refusals are LimitExceeded (413).
import * as repo from '../db/repo.js';
import { LimitExceeded } from './errors.js';
import type { Service } from './service.js';

function over(project: string, resource: string, limit: number, usage: number, delta: number): LimitExceeded {
  return new LimitExceeded(`Project ${project} is over a limit for [Resource ${resource} is over limit of ${limit} due to current usage ${usage} and delta ${delta}]`);
}

export async function checkImageCount(svc: Service, owner: string): Promise<void> {
  const lim = svc.cfg.quotas.imageCount;
  if (!svc.cfg.enforceQuotas || lim < 0) return;
  const u = await repo.projectUsage(svc.db, owner);
  if (u.count + 1 > lim) throw over(owner, 'image_count_total', lim, u.count, 1);
}

/** Before an upload starts: total stored size, in-flight uploads, staging bytes. */
export async function checkUploadStart(svc: Service, owner: string | null, declared: number | null): Promise<void> {
  if (!svc.cfg.enforceQuotas || !owner) return;
  const q = svc.cfg.quotas;
  if (q.imageSize < 0 && q.uploadingCount < 0 && q.stagingSize < 0) return;
  const u = await repo.projectUsage(svc.db, owner);
  if (q.imageSize >= 0 && u.size + (declared ?? 0) > q.imageSize) throw over(owner, 'image_size_total', q.imageSize, u.size, declared ?? 0);
  if (q.uploadingCount >= 0 && u.uploading + 1 > q.uploadingCount) throw over(owner, 'image_count_uploading', q.uploadingCount, u.uploading, 1);
  if (q.stagingSize >= 0 && u.staging + (declared ?? 0) > q.stagingSize) throw over(owner, 'image_stage_total', q.stagingSize, u.staging, declared ?? 0);
}

/** Bytes this upload may still store before a size quota trips (Infinity if none). */
export async function remainingBytes(svc: Service, owner: string | null): Promise<number> {
  let room = svc.cfg.imageSizeCap;
  if (!svc.cfg.enforceQuotas || !owner) return room;
  const q = svc.cfg.quotas;
  if (q.imageSize < 0 && q.stagingSize < 0) return room;
  const u = await repo.projectUsage(svc.db, owner);
  if (q.imageSize >= 0) room = Math.min(room, q.imageSize - u.size);
  if (q.stagingSize >= 0) room = Math.min(room, q.stagingSize - u.staging);
  return Math.max(0, room);
}

export function checkProperties(svc: Service, attempted: number, before = 0): void {
  const max = svc.cfg.quotas.propertyCount;
  if (max >= 0 && attempted > max && attempted > before) {
    throw new LimitExceeded(`The limit has been exceeded on the number of allowed image properties. Attempted: ${attempted}, Maximum: ${max}`);
  }
}

export function checkTags(svc: Service, attempted: number, before = 0): void {
  const max = svc.cfg.quotas.tagCount;
  if (max >= 0 && attempted > max && attempted > before) {
    throw new LimitExceeded(`The limit has been exceeded on the number of allowed image tags. Attempted: ${attempted}, Maximum: ${max}`);
  }
}

export function checkMembers(svc: Service, attempted: number): void {
  const max = svc.cfg.memberQuota;
  if (max >= 0 && attempted > max) {
    throw new LimitExceeded(`The limit has been exceeded on the number of allowed image members for this image. Attempted: ${attempted}, Maximum: ${max}`);
  }
}
