// Progress reporting for long verbs: a bar on a terminal (-p) or JSON lines (--progress json).
export type ProgressMode = 'bar' | 'json' | undefined;

export function progressReporter(mode: ProgressMode, out: NodeJS.WriteStream): ((done: number, total: number) => void) | undefined {
  if (mode === 'json') {
    let lastPct = -1;
    let finished = false;
    return (done, total) => {
      const percent = total > 0 ? Math.floor((done / total) * 10000) / 100 : 100;
      // One line per 1/100 of a percent at most (enough for a UI, not a flood), and the final one once.
      const final = done >= total;
      if (percent === lastPct && !(final && !finished)) return;
      lastPct = percent;
      finished ||= final;
      out.write(JSON.stringify({ done, total, percent }) + '\n');
    };
  }
  if (mode === 'bar') {
    if (!out.isTTY) return undefined;
    let last = -1;
    return (done, total) => {
      const pct = total > 0 ? (done / total) * 100 : 100;
      const tenth = Math.floor(pct * 10);
      if (tenth === last) return;
      last = tenth;
      const width = 40;
      const fill = Math.round((pct / 100) * width);
      out.write(`\r    [${'#'.repeat(fill)}${' '.repeat(width - fill)}] ${pct.toFixed(1).padStart(5)}%${done >= total ? '\n' : ''}`);
    };
  }
  return undefined;
}
