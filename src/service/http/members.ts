// /v2/images/{id}/members
import type { FastifyInstance } from 'fastify';
import type { Service } from '../domain/service.js';
import * as members from '../domain/members.js';
import { contextFor } from './context.js';
import { HttpError } from './errors.js';
import { readJson } from './body.js';
import { memberView } from './serialize.js';

type P = { Params: { id: string; member: string } };

export function registerMembers(app: FastifyInstance, svc: Service): void {
  const cfg = svc.cfg;
  app.post<P>('/v2/images/:id/members', async (req) => {
    const body = await readJson(req, cfg.bodyLimit);
    if (body === undefined) throw new HttpError(400, 'Body expected in request.');
    if (body === null || typeof body !== 'object' || !('member' in body)) throw new HttpError(400, 'Member to be added not specified');
    const m = (body as { member: unknown }).member;
    if (typeof m !== 'string') throw new HttpError(400, 'Expected a member in the form: {"member": "image_id"}');
    if (m.trim() === '') throw new HttpError(400, "Member can't be empty");
    if (m.length > 255) throw new HttpError(400, `Incorrect request: member id is too long`);
    return memberView(await members.addMember(svc, contextFor(cfg, req), req.params.id, m));
  });
  app.get<P>('/v2/images/:id/members', async (req) => {
    const rows = await members.listMembers(svc, contextFor(cfg, req), req.params.id);
    return { members: rows.map(memberView), schema: '/v2/schemas/members' };
  });
  app.get<P>('/v2/images/:id/members/:member', async (req) => {
    return memberView(await members.showMember(svc, contextFor(cfg, req), req.params.id, req.params.member));
  });
  app.put<P>('/v2/images/:id/members/:member', async (req) => {
    const body = await readJson(req, cfg.bodyLimit);
    if (body === undefined) throw new HttpError(400, 'Body expected in request.');
    if (body === null || typeof body !== 'object' || !('status' in body)) throw new HttpError(400, 'Status not specified');
    const s = (body as { status: unknown }).status;
    if (typeof s !== 'string') throw new HttpError(400, 'Expected a status in the form: {"status": "status"}');
    if (!(members.MEMBER_STATUSES as readonly string[]).includes(s)) {
      throw new HttpError(400, `Provided object does not match schema 'member': '${s}' is not one of ['pending', 'accepted', 'rejected']`);
    }
    return memberView(await members.updateMember(svc, contextFor(cfg, req), req.params.id, req.params.member, s));
  });
  app.delete<P>('/v2/images/:id/members/:member', async (req, reply) => {
    await members.deleteMember(svc, contextFor(cfg, req), req.params.id, req.params.member);
    return reply.code(204).send();
  });
}
