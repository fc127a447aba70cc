// Keeps the query planner's statistics current. A fresh PostgreSQL table that grows by
// thousands of rows between autovacuum runs is planned as if it held one row, which
// turns a filtered listing into a nested loop over every property (seconds per page).
// So after a burst of writes the service refreshes statistics itself.
import { sql } from 'kysely';
import type { Db } from './connect.js';

const pending = new WeakMap<Db, { writes: number; rowsAtLast: number }>();

/** Called by the repository after inserts. */
export function noteWrites(db: Db, n: number): void {
  const s = pending.get(db);
  if (s) s.writes += n;
}

async function refresh(db: Db, driver: 'sqlite' | 'postgres'): Promise<void> {
  if (driver === 'postgres') await sql`analyze images, image_properties, image_tags, image_members`.execute(db);
  else await sql`pragma optimize`.execute(db);
}

/** Starts the statistics refresher; returns a stop function. */
export async function startMaintenance(db: Db, driver: 'sqlite' | 'postgres', everyMs = 2000): Promise<() => void> {
  const state = { writes: 0, rowsAtLast: 0 };
  pending.set(db, state);
  await refresh(db, driver);
  let busy = false;
  const timer = setInterval(() => {
    // Refresh when writes since the last refresh exceed 10% of the table (min 200).
    if (busy || state.writes < Math.max(200, state.rowsAtLast / 10)) return;
    busy = true;
    const w = state.writes;
    refresh(db, driver)
      .then(() => { state.rowsAtLast += w; state.writes -= w; })
      .catch(() => {})
      .finally(() => { busy = false; });
  }, everyMs);
  timer.unref();
  return () => clearInterval(timer);
}
