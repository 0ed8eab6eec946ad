// Pure helpers of the map: graticule spacing, marker spacing and lane geometry from the API.

/** 1, 2 or 5 × 10^k just above x. */
export function niceStep(x: number): number {
  if (!(x > 0)) return 1;
  const p = Math.pow(10, Math.floor(Math.log10(x)));
  const f = x / p;
  return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * p;
}

/** A lane polyline to draw: [lat, lon] pairs (Leaflet order). */
export interface Lane {
  intersection_id: number;
  lane_id: number | null;
  type: string; // vehicle, crosswalk, bike, sidewalk, other
  coords: [number, number][];
}

/** Zoom from which the map draws lane geometry (a 60 m lane is ~50 px at zoom 16). */
export const LANE_MIN_ZOOM = 16;

/** Lanes from GET /api/v2/intersections/geometry (GeoJSON LineStrings, [lon, lat]);
 *  anything that is not a LineString of >= 2 finite in-range points is dropped. */
export function lanesFromGeoJson(fc: unknown): Lane[] {
  const out: Lane[] = [];
  const feats = (fc as { features?: unknown } | null)?.features;
  if (!Array.isArray(feats)) return out;
  for (const f of feats) {
    const g = (f as { geometry?: { type?: unknown; coordinates?: unknown } } | null)?.geometry;
    if (!g || g.type !== 'LineString' || !Array.isArray(g.coordinates)) continue;
    const coords: [number, number][] = [];
    for (const c of g.coordinates as unknown[]) {
      if (!Array.isArray(c) || c.length < 2) continue;
      const lon = Number(c[0]), lat = Number(c[1]);
      if (Number.isFinite(lat) && Number.isFinite(lon) && Math.abs(lat) <= 90 && Math.abs(lon) <= 180) coords.push([lat, lon]);
    }
    if (coords.length < 2) continue;
    const p = ((f as { properties?: unknown }).properties ?? {}) as Record<string, unknown>;
    out.push({
      intersection_id: Number(p.intersection_id),
      lane_id: typeof p.lane_id === 'number' ? p.lane_id : null,
      type: typeof p.lane_type === 'string' ? p.lane_type : 'other',
      coords,
    });
  }
  return out;
}

/** The bbox parameter (min_lon,min_lat,max_lon,max_lat) of a view grown by `pad` of its
 *  size on each side, clamped to the world and to the API's 1-degree limit. */
export function laneBbox(south: number, west: number, north: number, east: number, pad = 0.5): [number, number, number, number] {
  const dy = (north - south) * pad, dx = (east - west) * pad;
  const cy = (north + south) / 2, cx = (east + west) / 2;
  const hy = Math.min(0.5, (north - south) / 2 + dy), hx = Math.min(0.5, (east - west) / 2 + dx);
  const r = (v: number) => Math.round(v * 1e6) / 1e6;
  return [r(Math.max(-180, cx - hx)), r(Math.max(-90, cy - hy)), r(Math.min(180, cx + hx)), r(Math.min(90, cy + hy))];
}

/** Median distance from each point to its nearest neighbour (a 0 for fewer than 2).
 *  A uniform grid of cells keeps 1,000 points cheap. */
export function medianSpacing(pts: { x: number; y: number }[]): number {
  if (pts.length < 2) return 0;
  const xs = pts.map((p) => p.x), ys = pts.map((p) => p.y);
  const w = Math.max(...xs) - Math.min(...xs), h = Math.max(...ys) - Math.min(...ys);
  const cell = Math.max(w, h, 1e-12) / Math.max(1, Math.sqrt(pts.length));
  const grid = new Map<string, number[]>();
  const key = (cx: number, cy: number) => cx + ',' + cy;
  pts.forEach((p, i) => {
    const k = key(Math.floor(p.x / cell), Math.floor(p.y / cell));
    (grid.get(k) ?? grid.set(k, []).get(k)!).push(i);
  });
  const d: number[] = [];
  pts.forEach((p, i) => {
    const cx = Math.floor(p.x / cell), cy = Math.floor(p.y / cell);
    let best = Infinity;
    for (let r = 1; r <= 3 && best === Infinity; r++)
      for (let dx = -r; dx <= r; dx++)
        for (let dy = -r; dy <= r; dy++)
          for (const j of grid.get(key(cx + dx, cy + dy)) ?? [])
            if (j !== i) best = Math.min(best, Math.hypot(pts[j].x - p.x, pts[j].y - p.y));
    if (best < Infinity) d.push(best);
  });
  if (!d.length) return 0;
  d.sort((a, b) => a - b);
  return d[Math.floor(d.length / 2)];
}
