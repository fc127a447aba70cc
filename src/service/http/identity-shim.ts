// Only with auth 'none': the openstack client resolves `--project X` through the
// identity API at the same endpoint before changing a membership
// (`image set --accept --project X`). With no Keystone, answer those look-ups with the
// project named by its id so the command reaches the image API. Never enabled when
// identities come from a real authenticating proxy.
import type { FastifyInstance } from 'fastify';
import { HttpError } from './errors.js';

const project = (id: string) => ({ id, name: id, domain_id: 'default', enabled: true, description: '', is_domain: false, parent_id: 'default', links: { self: `/projects/${id}` } });

export function registerIdentityShim(app: FastifyInstance): void {
  for (const prefix of ['', '/v3']) {
    app.get<{ Params: { id: string } }>(`${prefix}/projects/:id`, async (req) => ({ project: project(req.params.id) }));
    app.get<{ Querystring: { name?: string } }>(`${prefix}/projects`, async (req) => {
      if (!req.query.name) throw new HttpError(404, 'The resource could not be found.');
      return { projects: [project(req.query.name)] };
    });
  }
}
