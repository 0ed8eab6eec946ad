// History points → chart columns. The API omits empty buckets; the chart must show
// them as gaps, so a null is inserted wherever consecutive points are further apart
// than one bucket (uPlot draws no line across a null).
import type { HistoryPoint } from './types';
import { bucketSeconds } from './period';

export interface Columns {
  t: number[]; // epoch seconds
  index: (number | null)[];
  volume: (number | null)[];
  points: HistoryPoint[]; // the points kept, in time order
}

export function toColumns(points: HistoryPoint[], aggregation: string, fromMs: number, toMs: number): Columns {
  const kept = points
    .map((p) => ({ p, ms: Date.parse(p.timestamp) }))
    .filter((x) => Number.isFinite(x.ms) && x.ms >= fromMs - 1 && x.ms < toMs)
    .sort((a, b) => a.ms - b.ms);
  const step = bucketSeconds(aggregation);
  const out: Columns = { t: [], index: [], volume: [], points: [] };
  let prev: number | null = null;
  for (const { p, ms } of kept) {
    const s = ms / 1000;
    if (prev !== null && step > 0 && s - prev > step * 1.5) {
      out.t.push(prev + step);
      out.index.push(null);
      out.volume.push(null);
    }
    if (prev !== null && s === prev) continue; // duplicate bucket: keep the first
    out.t.push(s);
    out.index.push(num(p.safety_index));
    out.volume.push(num(p.traffic_volume));
    out.points.push(p);
    prev = s;
  }
  return out;
}

function num(v: unknown): number | null {
  return typeof v === 'number' && Number.isFinite(v) ? v : null;
}
