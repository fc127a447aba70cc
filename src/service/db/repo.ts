// Repository: every SQL statement the service runs. Plain functions over a Kysely
// instance (or a transaction); no policy, no HTTP. Both dialects share this code.
import { sql, type Kysely, type Transaction, type SqlBool, type Expression, type ExpressionBuilder } from 'kysely';
import type { Database, ImageRow, MemberRow } from './schema.js';
import { noteWrites } from './maintenance.js';

export type Q = Kysely<Database> | Transaction<Database>;

export interface ImageRecord extends ImageRow {
  properties: Record<string, string>;
  tags: string[];
}

export async function insertImage(db: Kysely<Database>, row: ImageRow, props: Record<string, string>, tags: string[]): Promise<void> {
  await db.transaction().execute(async (tx) => {
    await tx.insertInto('images').values(row).execute();
    const p = Object.entries(props);
    if (p.length) await tx.insertInto('image_properties').values(p.map(([name, value]) => ({ image_id: row.id, name, value }))).execute();
    if (tags.length) await tx.insertInto('image_tags').values(tags.map((value) => ({ image_id: row.id, value }))).execute();
  });
  noteWrites(db, 1);
}

/** Whether an id was ever used (Glance refuses to reuse ids of deleted images). */
export async function idExists(db: Q, id: string): Promise<boolean> {
  const r = await db.selectFrom('images').select('id').where('id', '=', id).executeTakeFirst();
  return !!r;
}

export async function getImage(db: Q, id: string): Promise<ImageRecord | undefined> {
  const row = await db.selectFrom('images').selectAll().where('id', '=', id).where('deleted', '=', 0).executeTakeFirst();
  if (!row) return undefined;
  const [props, tags] = await Promise.all([
    db.selectFrom('image_properties').select(['name', 'value']).where('image_id', '=', id).execute(),
    db.selectFrom('image_tags').select('value').where('image_id', '=', id).execute(),
  ]);
  return { ...row, properties: Object.fromEntries(props.map((p) => [p.name, p.value])), tags: tags.map((t) => t.value) };
}

async function attach(db: Q, rows: ImageRow[]): Promise<ImageRecord[]> {
  if (rows.length === 0) return [];
  const ids = rows.map((r) => r.id);
  const [props, tags] = await Promise.all([
    db.selectFrom('image_properties').select(['image_id', 'name', 'value']).where('image_id', 'in', ids).execute(),
    db.selectFrom('image_tags').select(['image_id', 'value']).where('image_id', 'in', ids).execute(),
  ]);
  const byId = new Map<string, ImageRecord>();
  const out = rows.map((r) => { const rec: ImageRecord = { ...r, properties: {}, tags: [] }; byId.set(r.id, rec); return rec; });
  for (const p of props) byId.get(p.image_id)!.properties[p.name] = p.value;
  for (const t of tags) byId.get(t.image_id)!.tags.push(t.value);
  return out;
}

export interface ImageChanges {
  set: Partial<ImageRow>;
  setProps: Record<string, string>;
  delProps: string[];
  tags?: string[];
}

/**
 * Applies changes in one transaction. `fromStatus` makes it a compare-and-set on the
 * status (the guard that makes a second concurrent upload fail); returns false when
 * the row was not in one of those statuses (or is gone).
 */
export async function updateImage(db: Kysely<Database>, id: string, ch: ImageChanges, fromStatus?: string[]): Promise<boolean> {
  return db.transaction().execute(async (tx) => {
    let q = tx.updateTable('images').set(ch.set).where('id', '=', id).where('deleted', '=', 0);
    if (fromStatus) q = q.where('status', 'in', fromStatus);
    const r = await q.executeTakeFirst();
    if (Number(r.numUpdatedRows) !== 1) return false;
    if (ch.delProps.length) await tx.deleteFrom('image_properties').where('image_id', '=', id).where('name', 'in', ch.delProps).execute();
    for (const [name, value] of Object.entries(ch.setProps)) {
      await tx.insertInto('image_properties').values({ image_id: id, name, value })
        .onConflict((oc) => oc.columns(['image_id', 'name']).doUpdateSet({ value })).execute();
    }
    if (ch.tags) {
      await tx.deleteFrom('image_tags').where('image_id', '=', id).execute();
      if (ch.tags.length) await tx.insertInto('image_tags').values(ch.tags.map((value) => ({ image_id: id, value }))).execute();
    }
    return true;
  });
}

/** Status compare-and-set without other changes. */
export async function setStatus(db: Q, id: string, set: Partial<ImageRow>, fromStatus: string[]): Promise<boolean> {
  const r = await db.updateTable('images').set(set).where('id', '=', id).where('deleted', '=', 0)
    .where('status', 'in', fromStatus).executeTakeFirst();
  return Number(r.numUpdatedRows) === 1;
}

export async function addTag(db: Q, id: string, tag: string, updatedAt: string): Promise<void> {
  await db.insertInto('image_tags').values({ image_id: id, value: tag }).onConflict((oc) => oc.doNothing()).execute();
  await db.updateTable('images').set({ updated_at: updatedAt }).where('id', '=', id).execute();
}

export async function removeTag(db: Q, id: string, tag: string, updatedAt: string): Promise<boolean> {
  const r = await db.deleteFrom('image_tags').where('image_id', '=', id).where('value', '=', tag).executeTakeFirst();
  if (Number(r.numDeletedRows) === 0) return false;
  await db.updateTable('images').set({ updated_at: updatedAt }).where('id', '=', id).execute();
  return true;
}

// ---- listing ---------------------------------------------------------------------

export type Cmp = 'eq' | 'neq' | 'gt' | 'gte' | 'lt' | 'lte' | 'in';
export interface ColumnFilter { column: keyof ImageRow; op: Cmp; value: string | number | (string | number)[] }
export interface ListQuery {
  /** Who is asking: null project = no project (sees only public/community). */
  viewer: { project: string | null; admin: boolean };
  memberStatus: 'accepted' | 'pending' | 'rejected' | 'all';
  visibility?: string; // 'all' | one visibility | undefined (default rule)
  columns: ColumnFilter[];
  properties: { name: string; op: 'eq' | 'in'; value: string | string[] }[];
  tags: string[];
  sort: { key: keyof ImageRow; dir: 'asc' | 'desc' }[];
  marker?: ImageRow;
  limit: number;
}

/** Sort keys that are never NULL (no null ordering to respect). */
const NOT_NULL = new Set<string>(['id', 'status', 'visibility', 'created_at', 'updated_at', 'min_ram', 'min_disk', 'protected', 'os_hidden']);

const OPS: Record<Exclude<Cmp, 'in'>, '=' | '<>' | '>' | '>=' | '<' | '<='> = { eq: '=', neq: '<>', gt: '>', gte: '>=', lt: '<', lte: '<=' };

export async function listImages(db: Q, q: ListQuery): Promise<ImageRecord[]> {
  let query = db.selectFrom('images as i').selectAll('i').where('i.deleted', '=', 0).where('i.status', '<>', 'killed');
  const v = q.viewer;
  if (!v.admin) {
    // Regular users: public + community + own + shared-with-me (membership status filtered).
    query = query.where((eb) => {
      const ors: Expression<SqlBool>[] = [eb('i.visibility', 'in', ['public', 'community'])];
      if (v.project !== null) {
        ors.push(eb('i.owner', '=', v.project));
        ors.push(eb.and([
          eb('i.visibility', '=', 'shared'),
          eb.exists(eb.selectFrom('image_members as m').select('m.image_id').whereRef('m.image_id', '=', 'i.id')
            .where('m.member', '=', v.project)
            .$if(q.memberStatus !== 'all', (s) => s.where('m.status', '=', q.memberStatus))),
        ]));
      }
      return eb.or(ors);
    });
  }
  if (q.visibility !== undefined) {
    if (q.visibility !== 'all') query = query.where('i.visibility', '=', q.visibility);
  } else if (v.project === null) {
    query = query.where('i.visibility', '<>', 'community');
  } else {
    const p = v.project;
    query = query.where((eb) => eb.or([eb('i.owner', '=', p), eb('i.visibility', '<>', 'community')]));
  }
  for (const f of q.columns) {
    const col = `i.${f.column}` as const;
    if (f.op === 'in') query = query.where(col as any, 'in', f.value as any[]);
    else query = query.where(col as any, OPS[f.op], f.value as any);
  }
  for (const p of q.properties) {
    query = query.where((eb) => eb.exists(eb.selectFrom('image_properties as p').select('p.image_id').whereRef('p.image_id', '=', 'i.id')
      .where('p.name', '=', p.name)
      .where('p.value', p.op === 'in' ? 'in' : '=', p.value as any)));
  }
  for (const t of q.tags) {
    query = query.where((eb) => eb.exists(eb.selectFrom('image_tags as t').select('t.image_id').whereRef('t.image_id', '=', 'i.id').where('t.value', '=', t)));
  }
  if (q.marker) {
    const m = q.marker;
    // A plain range on the first sort key lets the database seek instead of scanning
    // from the start of the order; afterMarker() then settles ties exactly.
    const first = q.sort[0];
    const mv = m[first.key];
    if (mv !== null) {
      const col = `i.${first.key}` as 'i.name';
      if (first.dir === 'asc') query = query.where(col, '>=', mv as string);
      else if (NOT_NULL.has(first.key)) query = query.where(col, '<=', mv as string);
    }
    query = query.where((eb) => afterMarker(eb, q.sort, m));
  }
  // NULLs sort first ascending / last descending on both dialects (explicit flag).
  for (const s of q.sort) {
    const col = `i.${s.key}` as 'i.name';
    query = query.orderBy(col, (ob) => (s.dir === 'asc' ? ob.asc().nullsFirst() : ob.desc().nullsLast()));
  }
  query = query.limit(q.limit);
  const rows = await query.execute();
  return attach(db, rows as ImageRow[]);
}

/** Rows strictly after the marker in the (nullable, mixed-direction) sort order. */
function afterMarker(eb: ExpressionBuilder<any, any>, sort: ListQuery['sort'], m: ImageRow): Expression<SqlBool> {
  const ors: Expression<SqlBool>[] = [];
  for (let i = 0; i < sort.length; i++) {
    const ands: Expression<SqlBool>[] = [];
    for (let j = 0; j < i; j++) ands.push(equal(eb, sort[j].key, m[sort[j].key]));
    const after = beyond(eb, sort[i].key, m[sort[i].key], sort[i].dir);
    if (after === null) continue;
    ands.push(after);
    ors.push(eb.and(ands));
  }
  return ors.length ? eb.or(ors) : sql<SqlBool>`1 = 0`;
}

function equal(eb: ExpressionBuilder<any, any>, key: string, v: unknown): Expression<SqlBool> {
  return v === null ? eb(`i.${key}`, 'is', null) : eb(`i.${key}`, '=', v);
}

function beyond(eb: ExpressionBuilder<any, any>, key: string, v: unknown, dir: 'asc' | 'desc'): Expression<SqlBool> | null {
  const col = `i.${key}`;
  if (NOT_NULL.has(key)) return eb(col, dir === 'asc' ? '>' : '<', v);
  if (dir === 'asc') return v === null ? eb(col, 'is not', null) : eb(col, '>', v);
  // desc: non-null values first (descending), then nulls.
  return v === null ? null : eb.or([eb(col, '<', v), eb(col, 'is', null)]);
}

export async function getMarkerRow(db: Q, id: string): Promise<ImageRow | undefined> {
  return db.selectFrom('images').selectAll().where('id', '=', id).where('deleted', '=', 0).executeTakeFirst();
}

// ---- members ---------------------------------------------------------------------

export async function getMember(db: Q, imageId: string, member: string): Promise<MemberRow | undefined> {
  return db.selectFrom('image_members').selectAll().where('image_id', '=', imageId).where('member', '=', member).executeTakeFirst();
}

export async function listMembers(db: Q, imageId: string): Promise<MemberRow[]> {
  return db.selectFrom('image_members').selectAll().where('image_id', '=', imageId).orderBy('created_at').orderBy('member').execute();
}

export async function countMembers(db: Q, imageId: string): Promise<number> {
  const r = await db.selectFrom('image_members').select((eb) => eb.fn.countAll<number>().as('n')).where('image_id', '=', imageId).executeTakeFirstOrThrow();
  return Number(r.n);
}

export async function insertMember(db: Q, row: MemberRow): Promise<boolean> {
  const r = await db.insertInto('image_members').values(row).onConflict((oc) => oc.doNothing()).executeTakeFirst();
  return Number(r.numInsertedOrUpdatedRows ?? 0) === 1;
}

export async function updateMemberStatus(db: Q, imageId: string, member: string, status: string, at: string): Promise<void> {
  await db.updateTable('image_members').set({ status, updated_at: at }).where('image_id', '=', imageId).where('member', '=', member).execute();
}

export async function deleteMember(db: Q, imageId: string, member: string): Promise<boolean> {
  const r = await db.deleteFrom('image_members').where('image_id', '=', imageId).where('member', '=', member).executeTakeFirst();
  return Number(r.numDeletedRows) === 1;
}

// ---- quotas ----------------------------------------------------------------------

export async function projectUsage(db: Q, owner: string): Promise<{ count: number; size: number; staging: number; uploading: number }> {
  const r = await db.selectFrom('images')
    .select((eb) => [
      eb.fn.countAll<number>().as('count'),
      eb.fn.coalesce(eb.fn.sum<number>('size'), sql<number>`0`).as('size'),
      eb.fn.coalesce(eb.fn.sum<number>('staging_size'), sql<number>`0`).as('staging'),
      sql<number>`sum(case when status = 'saving' then 1 else 0 end)`.as('uploading'),
    ])
    .where('owner', '=', owner).where('deleted', '=', 0).executeTakeFirstOrThrow();
  return { count: Number(r.count), size: Number(r.size), staging: Number(r.staging), uploading: Number(r.uploading ?? 0) };
}

/** Images stuck in 'saving' (server died mid-upload): back to queued on start-up. */
export async function resetSaving(db: Q, at: string): Promise<string[]> {
  const rows = await db.selectFrom('images').select('id').where('status', '=', 'saving').where('deleted', '=', 0).execute();
  if (rows.length) await db.updateTable('images').set({ status: 'queued', staging_size: 0, updated_at: at }).where('status', '=', 'saving').execute();
  return rows.map((r) => r.id);
}

export async function allLocations(db: Q): Promise<Set<string>> {
  const rows = await db.selectFrom('images').select('location').where('location', 'is not', null).where('deleted', '=', 0).execute();
  return new Set(rows.map((r) => r.location!));
}
