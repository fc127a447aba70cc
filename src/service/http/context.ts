// Builds the request context from the configured auth mode: 'none' acts as an admin of
// the default project; 'trusted-headers' believes the identity headers an
// authenticating proxy in front of the service sets (keystonemiddleware's names).
import type { FastifyRequest } from 'fastify';
import type { ServiceConfig } from '../config.js';
import { makeContext, type RequestContext } from '../domain/context.js';

const ADMIN_NONE = (cfg: ServiceConfig) => makeContext(cfg.defaultProject, cfg.defaultUser, ['admin', 'member', 'reader']);

export function contextFor(cfg: ServiceConfig, req: FastifyRequest): RequestContext {
  if (cfg.auth === 'none') return ADMIN_NONE(cfg);
  const h = req.headers;
  const one = (v: string | string[] | undefined) => (Array.isArray(v) ? v[0] : v)?.trim() || null;
  const project = one(h['x-project-id']) ?? one(h['x-tenant-id']) ?? one(h['x-tenant']);
  const user = one(h['x-user-id']) ?? one(h['x-user']);
  const roles = (one(h['x-roles']) ?? one(h['x-role']) ?? '').split(',');
  return makeContext(project, user, roles);
}
