// Who is asking. Built by the HTTP layer from the auth mode; the domain only reads it.
export interface RequestContext {
  project: string | null;
  user: string | null;
  roles: ReadonlySet<string>;
  isAdmin: boolean;
  /** Keystone's implied roles: admin ⊃ member ⊃ reader. */
  isMember: boolean;
  isReader: boolean;
}

export function makeContext(project: string | null, user: string | null, roles: string[]): RequestContext {
  const set = new Set(roles.map((r) => r.trim().toLowerCase()).filter(Boolean));
  const isAdmin = set.has('admin');
  const isMember = isAdmin || set.has('member') || set.has('_member_');
  const isReader = isMember || set.has('reader');
  return { project, user, roles: set, isAdmin, isMember, isReader };
}
