// The tsi API client: every request the dashboard makes goes through here.
import type { DataSource, Fetched, History, IndexItem, StatRow, Stats } from './types';

export class ApiError extends Error {
  constructor(
    public status: number,
    message: string,
    public code?: string,
    public field?: string,
  ) {
    super(message);
  }
}

const BASE = '/api/v2';

function sourceOf(r: Response): DataSource {
  const s = (r.headers.get('X-Data-Source') ?? '').toLowerCase();
  return s === 'postgres' || s === 'parquet' ? s : 'unknown';
}

export async function getJson<T>(path: string, params?: Record<string, string | number | undefined | null>, signal?: AbortSignal): Promise<Fetched<T>> {
  const q = new URLSearchParams();
  if (params) for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
  const url = path + (q.size ? '?' + q.toString() : '');
  const r = await fetch(url, { headers: { Accept: 'application/json' }, signal });
  if (!r.ok) {
    let msg = `${r.status} ${r.statusText}`;
    let code: string | undefined, field: string | undefined;
    try {
      const b = await r.json();
      if (b && typeof b.detail === 'string') msg = b.detail;
      code = typeof b?.code === 'string' ? b.code : undefined;
      field = typeof b?.field === 'string' ? b.field : undefined;
    } catch {
      /* not JSON: keep the status line */
    }
    throw new ApiError(r.status, msg, code, field);
  }
  const since = Date.parse(r.headers.get('X-Data-Source-Since') ?? '');
  return { data: (await r.json()) as T, source: sourceOf(r), since: Number.isFinite(since) ? since : undefined };
}

/** Accepts a bare array or an object wrapping one (items/results/intersections/data). */
export function asArray<T>(body: unknown): T[] {
  if (Array.isArray(body)) return body as T[];
  if (body && typeof body === 'object') {
    for (const k of ['items', 'results', 'intersections', 'ranking', 'data']) {
      const v = (body as Record<string, unknown>)[k];
      if (Array.isArray(v)) return v as T[];
    }
  }
  return [];
}

export const api = {
  index: (signal?: AbortSignal) => getJson<IndexItem[]>(`${BASE}/safety/index/`, undefined, signal),
  history: (id: number, p: { start_date: string; end_date: string; aggregation?: string }, signal?: AbortSignal) =>
    getJson<History>(`${BASE}/safety/history/${id}`, p, signal),
  stats: (id: number, p: { start_date: string; end_date: string }, signal?: AbortSignal) =>
    getJson<Stats>(`${BASE}/safety/history/${id}/stats`, p, signal),
  geometry: (bbox: string, signal?: AbortSignal) => getJson<unknown>(`${BASE}/intersections/geometry`, { bbox }, signal),
  intersection: (id: number, signal?: AbortSignal) => getJson<Record<string, unknown>>(`${BASE}/intersections/${id}`, undefined, signal),
  nearby: (p: { lat: number; lon: number; radius: number; min_index?: number | null; risk_level?: string | null }) =>
    getJson<unknown>(`${BASE}/intersections/nearby`, p).then((f) => ({ ...f, data: asArray<IndexItem>(f.data) })),
  route: (waypoints: { lat: number; lon: number }[], buffer: number, min_index?: number | null, risk_level?: string | null) =>
    getJson<unknown>(`${BASE}/intersections/route`, { waypoints: JSON.stringify(waypoints), buffer, min_index, risk_level }).then((f) => ({
      ...f,
      data: asArray<IndexItem>(f.data),
    })),
  area: (polygon: { lat: number; lon: number }[], min_index?: number | null, risk_level?: string | null) =>
    getJson<unknown>(`${BASE}/intersections/area`, { polygon: JSON.stringify(polygon), min_index, risk_level }).then((f) => ({
      ...f,
      data: asArray<IndexItem>(f.data),
    })),
  compare: (ids: number[], p: { start_date: string; end_date: string }) =>
    getJson<unknown>(`${BASE}/safety/compare`, { ids: ids.join(','), ...p }).then((f) => ({ ...f, data: asArray<StatRow>(f.data) })),
  ranking: (p: { metric: string; start_date: string; end_date: string; limit: number; order: string; min_index?: number | null; risk_level?: string | null }) =>
    getJson<unknown>(`${BASE}/safety/ranking`, p).then((f) => ({ ...f, data: asArray<StatRow>(f.data) })),
};

/** Optional server configuration (tile URL): the meta tag tsi-tile-url when a server
 *  filled it in, else GET /api/v2/config — asked only when the server's OpenAPI document
 *  lists it, so a server without it costs no failed request (and no console error). */
export async function loadConfig(): Promise<{ tile_url?: string; tile_attribution?: string }> {
  const meta = document.querySelector<HTMLMetaElement>('meta[name="tsi-tile-url"]');
  const fromMeta = meta?.content?.trim();
  if (fromMeta) return { tile_url: fromMeta };
  try {
    const o = await fetch(`${BASE}/openapi.json`, { headers: { Accept: 'application/json' } });
    if (!o.ok) return {};
    const doc = await o.json();
    if (!doc?.paths || !(`${BASE}/config` in doc.paths)) return {};
    const r = await fetch(`${BASE}/config`, { headers: { Accept: 'application/json' } });
    if (!r.ok) return {};
    const b = await r.json();
    return b && typeof b === 'object' ? b : {};
  } catch {
    return {};
  }
}
