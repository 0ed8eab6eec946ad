// Filtering and sorting of the intersection table (pure; the map and table share it).
import type { IndexItem, RiskLevel } from './types';
import { itemRisk } from './risk';

export interface Filters {
  name: string;
  indexMin: number | null;
  indexMax: number | null;
  volumeMin: number | null;
  volumeMax: number | null;
  /** Empty = every level (and items without data). */
  levels: RiskLevel[];
}

export const NO_FILTERS: Filters = {
  name: '',
  indexMin: null,
  indexMax: null,
  volumeMin: null,
  volumeMax: null,
  levels: [],
};

function inRange(v: number | null | undefined, lo: number | null, hi: number | null): boolean {
  if (lo === null && hi === null) return true;
  if (v === null || v === undefined || !Number.isFinite(v)) return false;
  if (lo !== null && v < lo) return false;
  if (hi !== null && v > hi) return false;
  return true;
}

export function applyFilters(items: IndexItem[], f: Filters): IndexItem[] {
  const needle = f.name.trim().toLowerCase();
  return items.filter((it) => {
    if (needle && !(it.intersection_name ?? '').toLowerCase().includes(needle) && String(it.intersection_id) !== needle)
      return false;
    if (!inRange(it.safety_index, f.indexMin, f.indexMax)) return false;
    if (!inRange(it.traffic_volume, f.volumeMin, f.volumeMax)) return false;
    if (f.levels.length > 0) {
      const r = itemRisk(it);
      if (!r || !f.levels.includes(r)) return false;
    }
    return true;
  });
}

export type SortKey = 'intersection_id' | 'intersection_name' | 'safety_index' | 'risk_level' | 'traffic_volume' | 'vru_count' | 'timestamp';

const RISK_ORDER: Record<RiskLevel, number> = { Low: 0, Medium: 1, High: 2 };

function key(it: IndexItem, k: SortKey): number | string | null {
  switch (k) {
    case 'risk_level': {
      const r = itemRisk(it);
      return r ? RISK_ORDER[r] : null;
    }
    case 'intersection_name':
      return it.intersection_name ?? null;
    case 'timestamp':
      return it.timestamp ?? null;
    default: {
      const v = it[k];
      return typeof v === 'number' && Number.isFinite(v) ? v : null;
    }
  }
}

/** Stable sort; missing values always last whatever the direction; ties by id. */
export function sortItems(items: IndexItem[], k: SortKey, dir: 'asc' | 'desc'): IndexItem[] {
  const sign = dir === 'asc' ? 1 : -1;
  return items
    .map((it, i) => ({ it, i, v: key(it, k) }))
    .sort((a, b) => {
      if (a.v === null && b.v === null) return a.it.intersection_id - b.it.intersection_id || a.i - b.i;
      if (a.v === null) return 1;
      if (b.v === null) return -1;
      let c: number;
      if (typeof a.v === 'string' || typeof b.v === 'string') c = String(a.v).localeCompare(String(b.v));
      else c = a.v - b.v;
      return c !== 0 ? sign * c : a.it.intersection_id - b.it.intersection_id || a.i - b.i;
    })
    .map((x) => x.it);
}
