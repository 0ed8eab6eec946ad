// Pure helpers of the map: graticule spacing and lane geometry from intersection metadata.

/** 1, 2 or 5 × 10^k just above x. */
export function niceStep(x: number): number {
  if (!(x > 0)) return 1;
  const p = Math.pow(10, Math.floor(Math.log10(x)));
  const f = x / p;
  return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * p;
}

/** Lane geometry from an intersection's metadata, whatever shape the API gives it:
 *  MapData laneSet (nodesList.nodes[].delta{lat,lon}), {lanes:[{type, coords|nodes}]},
 *  or a GeoJSON (Multi)LineString / FeatureCollection. */
export function lanesFromMetadata(meta: unknown): { type: string; coords: [number, number][] }[] {
  const out: { type: string; coords: [number, number][] }[] = [];
  const visit = (v: unknown, depth: number): void => {
    if (!v || typeof v !== 'object' || depth > 6) return;
    const o = v as Record<string, unknown>;
    if (Array.isArray(v)) {
      for (const x of v) visit(x, depth + 1);
      return;
    }
    if (o.type === 'LineString' && Array.isArray(o.coordinates)) {
      pushLine('vehicle', (o.coordinates as number[][]).map((c) => [c[1], c[0]]));
      return;
    }
    if (o.type === 'MultiLineString' && Array.isArray(o.coordinates)) {
      for (const l of o.coordinates as number[][][]) pushLine('vehicle', l.map((c) => [c[1], c[0]]));
      return;
    }
    const nodes = (o.nodesList as Record<string, unknown> | undefined)?.nodes ?? o.nodes ?? o.coords;
    if (Array.isArray(nodes)) {
      const attrs = o.laneAttributes as Record<string, unknown> | undefined;
      const type = String(attrs?.laneType ?? o.laneType ?? o.type ?? 'vehicle');
      const coords: [number, number][] = [];
      for (const n of nodes) {
        if (Array.isArray(n) && n.length >= 2) coords.push([Number(n[0]), Number(n[1])]);
        else if (n && typeof n === 'object') {
          const d = ((n as Record<string, unknown>).delta ?? n) as Record<string, unknown>;
          coords.push([Number(d.lat), Number(d.lon ?? d.lng)]);
        }
      }
      pushLine(type, coords);
      return;
    }
    for (const k of ['metadata', 'lanes', 'laneSet', 'lane_geometry', 'geometry', 'features']) if (k in o) visit(o[k], depth + 1);
  };
  const pushLine = (type: string, coords: number[][]) => {
    const ok = coords.filter((c) => Number.isFinite(c[0]) && Number.isFinite(c[1]) && Math.abs(c[0]) <= 90 && Math.abs(c[1]) <= 180) as [number, number][];
    if (ok.length >= 2) out.push({ type, coords: ok });
  };
  visit(meta, 0);
  return out;
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
