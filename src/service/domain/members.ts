// Image members: the owner shares a 'shared' image with other projects; each member
// project accepts, rejects or leaves it pending (only accepted ones list it by default).
import { Conflict, Forbidden, NotFound } from '../../engine/errors.js';
import * as repo from '../db/repo.js';
import type { MemberRow } from '../db/schema.js';
import type { RequestContext } from './context.js';
import { load } from './images.js';
import { allowed, enforce, isOwner } from './policy.js';
import { checkMembers } from './quotas.js';
import { now, type Service } from './service.js';

export const MEMBER_STATUSES = ['pending', 'accepted', 'rejected'] as const;

export async function addMember(svc: Service, ctx: RequestContext, imageId: string, memberId: string): Promise<MemberRow> {
  const { img, member } = await load(svc, ctx, imageId);
  if (img.visibility !== 'shared') throw new Forbidden('Only shared images have members.');
  if (!allowed(ctx, 'add_member', img, member)) throw new Forbidden(`Not allowed to create members for image ${imageId}.`);
  checkMembers(svc, (await repo.countMembers(svc.db, imageId)) + 1);
  const ts = now();
  const row: MemberRow = { image_id: imageId, member: memberId, status: 'pending', created_at: ts, updated_at: ts };
  if (!(await repo.insertMember(svc.db, row))) throw new Conflict(`Member ${memberId} is duplicated for image ${imageId}`);
  return row;
}

export async function listMembers(svc: Service, ctx: RequestContext, imageId: string): Promise<MemberRow[]> {
  const { img, member } = await load(svc, ctx, imageId);
  if (img.visibility !== 'shared') throw new Forbidden('Only shared images have members.');
  if (!allowed(ctx, 'get_members', img, member)) throw new Forbidden(`Not allowed to list members for image ${imageId}.`);
  const rows = await repo.listMembers(svc.db, imageId);
  // A member project sees only its own membership.
  if (ctx.isAdmin || isOwner(ctx, img)) return rows;
  return rows.filter((r) => r.member === ctx.project);
}

export async function showMember(svc: Service, ctx: RequestContext, imageId: string, memberId: string): Promise<MemberRow> {
  const { img, member } = await load(svc, ctx, imageId);
  if (img.visibility !== 'shared') throw new Forbidden('Only shared images have members.');
  const row = await repo.getMember(svc.db, imageId, memberId);
  const mayLook = ctx.isAdmin || isOwner(ctx, img) || (member && memberId === ctx.project);
  if (!row || !mayLook) throw new NotFound(`${memberId} not found in the member list of the image ${imageId}.`);
  enforce(ctx, 'get_member', img, member);
  return row;
}

export async function updateMember(svc: Service, ctx: RequestContext, imageId: string, memberId: string, status: string): Promise<MemberRow> {
  const { img, member } = await load(svc, ctx, imageId);
  const row = await repo.getMember(svc.db, imageId, memberId);
  if (!row) throw new NotFound(`${memberId} not found in the member list of the image ${imageId}.`);
  // Only the member project itself (or an admin) decides; the owner may not.
  if (!ctx.isAdmin && ctx.project !== memberId) throw new Forbidden("You are not permitted to modify 'status' on this image member.");
  if (!allowed(ctx, 'modify_member', img, member)) throw new Forbidden(`Not allowed to update members for image ${imageId}.`);
  const ts = now();
  await repo.updateMemberStatus(svc.db, imageId, memberId, status, ts);
  return { ...row, status, updated_at: ts };
}

export async function deleteMember(svc: Service, ctx: RequestContext, imageId: string, memberId: string): Promise<void> {
  const { img, member } = await load(svc, ctx, imageId);
  if (img.visibility !== 'shared') throw new Forbidden('Only shared images have members.');
  if (!allowed(ctx, 'delete_member', img, member)) throw new Forbidden(`Not allowed to delete members for image ${imageId}.`);
  if (!(await repo.deleteMember(svc.db, imageId, memberId))) throw new NotFound(`${memberId} not found in the member list of the image ${imageId}.`);
}
