// Glance's default policy rules (secure-RBAC defaults: admin, member, reader with
// project scoping), as plain predicates. Invisible images are reported as missing
// (404) so their existence does not leak; visible ones refused with 403.
import { Forbidden, NotFound } from '../../engine/errors.js';
import type { RequestContext } from './context.js';
import type { ImageRecord } from '../db/repo.js';

export type ImageAction =
  | 'get_image' | 'download_image' | 'modify_image' | 'delete_image' | 'upload_image'
  | 'deactivate' | 'reactivate' | 'publicize_image' | 'communitize_image'
  | 'add_member' | 'delete_member' | 'get_members' | 'get_member' | 'modify_member';

export const notFound = (id: string) => new NotFound(`No image found with ID ${id}`);

export function isOwner(ctx: RequestContext, img: Pick<ImageRecord, 'owner'>): boolean {
  return ctx.project !== null && img.owner === ctx.project;
}

/** Glance's get_image: admin, owner, public/community, or a member of a shared image. */
export function canSee(ctx: RequestContext, img: ImageRecord, memberStatus: string | undefined): boolean {
  if (ctx.isAdmin) return true;
  if (!ctx.isReader) return false;
  if (isOwner(ctx, img)) return true;
  if (img.visibility === 'public' || img.visibility === 'community') return true;
  return img.visibility === 'shared' && memberStatus !== undefined;
}

/** Whether `ctx` may do `action` on an image it can see. */
export function allowed(ctx: RequestContext, action: ImageAction, img: ImageRecord, memberOfImage: boolean): boolean {
  if (ctx.isAdmin) return true;
  const ownerMember = ctx.isMember && isOwner(ctx, img);
  switch (action) {
    case 'get_image':
    case 'download_image':
      return ctx.isReader;
    case 'get_members':
    case 'get_member':
      return ctx.isReader && (isOwner(ctx, img) || memberOfImage);
    case 'modify_member':
      return ctx.isMember && memberOfImage;
    case 'publicize_image':
      return false;
    default:
      return ownerMember;
  }
}

export function enforce(ctx: RequestContext, action: ImageAction, img: ImageRecord, memberOfImage: boolean): void {
  if (!allowed(ctx, action, img, memberOfImage)) {
    throw new Forbidden(`You are not authorized to complete ${action} action.`);
  }
}

export function enforceList(ctx: RequestContext): void {
  if (!ctx.isReader) throw new Forbidden('You are not authorized to complete get_images action.');
}

export function enforceCreate(ctx: RequestContext, owner: string | null): void {
  if (ctx.isAdmin) return;
  if (!ctx.isMember || owner !== ctx.project) throw new Forbidden('You are not authorized to complete add_image action.');
}
