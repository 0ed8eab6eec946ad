// A small stand-in for `tsi serve`, used only where the real server cannot run
// (`scripts/e2e --fixture`, and the dashboard benchmark's reference run): it serves
// web/dist and answers the API routes the dashboard uses, with the shapes of
// domain.md §6 / issue 13, from deterministic synthetic data.
//
//   node tests/e2e/fixture-server.mjs --port 8099 --intersections 1000 [--dist web/dist]
//   POST /__fixture/source?value=parquet|postgres  switches the X-Data-Source header.
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const args = Object.fromEntries(
  process.argv.slice(2).reduce((acc, a, i, all) => (a.startsWith('--') ? [...acc, [a.slice(2), all[i + 1]]] : acc), []),
);
const PORT = Number(args.port ?? 8099);
const N = Number(args.intersections ?? 50);
const DIST = path.resolve(args.dist ?? path.join(here, '../../web/dist'));
let source = args.source ?? 'postgres';

// ---- deterministic data -------------------------------------------------------------
function mulberry32(a) {
  return () => {
    a |= 0;
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const rnd = mulberry32(42);
const CENTER = { lat: 37.2296, lon: -80.4139 };
const side = Math.ceil(Math.sqrt(N));
const now = Date.now();
const minute = Math.floor(now / 60000) * 60000 - 60000;
const level = (v) => (v > 75 ? 'High' : v >= 60 ? 'Medium' : 'Low');
const items = [];
for (let i = 0; i < N; i++) {
  const r = i / side, c = i % side;
  const lat = CENTER.lat + (Math.floor(r) - side / 2) * 0.004 + (rnd() - 0.5) * 0.0015;
  const lon = CENTER.lon + (c - side / 2) * 0.005 + (rnd() - 0.5) * 0.0015;
  const vru = +(rnd() * 100).toFixed(3), veh = +(rnd() * 100).toFixed(3);
  const comb = +(0.6 * vru + 0.4 * veh).toFixed(3);
  const lam = 0.3 + rnd() * 0.6;
  const eb = (x) => +(lam * x + (1 - lam) * 50).toFixed(3);
  const si = i === 0 ? null : eb(comb);
  items.push({
    intersection_id: 1000 + i,
    intersection_name: i === 3 ? '=1+2 <img src=x onerror="window.__xss=1"> & "Quote", Comma' : `Fixture Ave ${i} & Cross St ${i % 17}`,
    safety_index: si,
    traffic_volume: i === 0 ? null : Math.floor(rnd() * 200),
    latitude: +lat.toFixed(6),
    longitude: +lon.toFixed(6),
    timestamp: i === 0 ? null : new Date(minute).toISOString(),
    risk_level: si === null ? null : level(si),
    combined_index: i === 0 ? null : comb,
    combined_index_eb: si,
    vru_index: i === 0 ? null : vru,
    vru_index_eb: i === 0 ? null : eb(vru),
    vehicle_index: i === 0 ? null : veh,
    vehicle_index_eb: i === 0 ? null : eb(veh),
    vru_count: i === 0 ? null : Math.floor(rnd() * 12),
  });
}
const byId = new Map(items.map((x) => [x.intersection_id, x]));

// ---- helpers ------------------------------------------------------------------------
const R = 6371008.8;
const rad = (d) => (d * Math.PI) / 180;
function haversine(a, b) {
  const dlat = rad(b.lat - a.lat), dlon = rad(b.lon - a.lon);
  const h = Math.sin(dlat / 2) ** 2 + Math.cos(rad(a.lat)) * Math.cos(rad(b.lat)) * Math.sin(dlon / 2) ** 2;
  return 2 * R * Math.asin(Math.min(1, Math.sqrt(h)));
}
function segDist(p, a, b) {
  // local tangent plane around p (fine at city scale)
  const k = Math.cos(rad(p.lat));
  const ax = (a.lon - p.lon) * k, ay = a.lat - p.lat, bx = (b.lon - p.lon) * k, by = b.lat - p.lat;
  const dx = bx - ax, dy = by - ay, L2 = dx * dx + dy * dy;
  let t = L2 ? -(ax * dx + ay * dy) / L2 : 0;
  t = Math.max(0, Math.min(1, t));
  return Math.hypot(ax + t * dx, ay + t * dy) * (Math.PI / 180) * R;
}
function inPolygon(p, poly) {
  let inside = false;
  for (let i = 0, j = poly.length - 1; i < poly.length; j = i++) {
    const a = poly[i], b = poly[j];
    if (a.lat > p.lat !== b.lat > p.lat && p.lon < ((b.lon - a.lon) * (p.lat - a.lat)) / (b.lat - a.lat) + a.lon) inside = !inside;
  }
  return inside;
}
const DATE_RE = /^\d{4}-\d{2}-\d{2}$/;
function parseDate(s) {
  if (!s || !DATE_RE.test(s)) return null;
  const ms = Date.parse(s + 'T00:00:00Z');
  return Number.isFinite(ms) && new Date(ms).toISOString().slice(0, 10) === s ? ms : null;
}
const DAY = 86400000;
function range(q) {
  let end = q.get('end_date') ? parseDate(q.get('end_date')) : Math.floor(now / DAY) * DAY;
  const days = q.has('days') ? Number(q.get('days')) : 7;
  if (q.has('days') && !(Number.isInteger(days) && days >= 1 && days <= 365)) throw bad('days must be 1..365', 'days');
  let start = q.get('start_date') ? parseDate(q.get('start_date')) : end - (days - 1) * DAY;
  if (start === null) throw bad('start_date must be YYYY-MM-DD', 'start_date');
  if (end === null) throw bad('end_date must be YYYY-MM-DD', 'end_date');
  if (start > end) throw bad('start_date is after end_date', 'start_date');
  const n = (end - start) / DAY + 1;
  if (n > 365) throw bad('range longer than 365 days', 'end_date');
  const agg = q.get('aggregation') || (n <= 1 ? '1min' : n <= 7 ? '1hour' : n <= 30 ? '1day' : n <= 90 ? '1week' : '1month');
  const steps = { '1min': 60000, '1hour': 3600000, '1day': DAY, '1week': 7 * DAY, '1month': 30 * DAY };
  if (!steps[agg]) throw bad('unknown aggregation', 'aggregation');
  return { start, end, agg, step: steps[agg] };
}
function bad(detail, field) {
  return Object.assign(new Error(detail), { status: 400, body: { detail, code: 'invalid_parameter', field } });
}
function series(id, r) {
  const pts = [];
  const base = byId.get(id)?.safety_index ?? 40;
  const to = Math.min(r.end + DAY, minute + 60000);
  for (let t = r.start; t < to; t += r.step) {
    const h = new Date(t).getUTCHours();
    if (r.step < DAY && (h === 3 || h === 4)) continue; // a gap every night
    const si = Math.max(0, Math.min(100, base + 20 * Math.sin((t / 3600000 / 24) * 2 * Math.PI + id) + ((t / 60000) % 7) - 3));
    pts.push({
      timestamp: new Date(t).toISOString(),
      safety_index: +si.toFixed(3),
      vru_index: +(si * 0.9).toFixed(3),
      vehicle_index: +(si * 0.8).toFixed(3),
      traffic_volume: Math.round(50 + 40 * Math.sin((t / 3600000 / 24) * 2 * Math.PI)),
      hour_of_day: h,
      day_of_week: (new Date(t).getUTCDay() + 6) % 7,
    });
  }
  return pts;
}
function stats(id, r) {
  const pts = series(id, r);
  const v = pts.map((p) => p.safety_index);
  const avg = v.length ? v.reduce((a, b) => a + b, 0) / v.length : null;
  const sd = v.length > 1 ? Math.sqrt(v.reduce((a, b) => a + (b - avg) ** 2, 0) / (v.length - 1)) : null;
  const high = v.filter((x) => x > 75).length;
  const vol = pts.reduce((a, p) => a + p.traffic_volume, 0);
  return {
    intersection_id: id,
    intersection_name: byId.get(id).intersection_name,
    period_start: new Date(r.start).toISOString().slice(0, 10),
    period_end: new Date(r.end).toISOString().slice(0, 10),
    avg_safety_index: avg,
    min_safety_index: v.length ? Math.min(...v) : null,
    max_safety_index: v.length ? Math.max(...v) : null,
    std_safety_index: sd,
    total_traffic_volume: vol,
    avg_traffic_volume: pts.length ? vol / pts.length : null,
    high_risk_intervals: high,
    high_risk_percentage: v.length ? (100 * high) / v.length : null,
  };
}
function threshold(list, q) {
  let out = list;
  if (q.has('min_index')) out = out.filter((x) => x.safety_index !== null && x.safety_index >= Number(q.get('min_index')));
  if (q.get('risk_level')) out = out.filter((x) => x.risk_level === q.get('risk_level'));
  return out;
}
function json(res, status, body, extra = {}) {
  const s = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json', 'X-Data-Source': source, 'Cache-Control': 'no-store', ...extra });
  res.end(s);
}
const TYPES = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript', '.css': 'text/css', '.png': 'image/png', '.svg': 'image/svg+xml' };
function serveStatic(req, res, p) {
  let file = path.normalize(path.join(DIST, decodeURIComponent(p)));
  if (!file.startsWith(DIST)) return json(res, 404, { detail: 'Not found' });
  if (!fs.existsSync(file) || fs.statSync(file).isDirectory()) file = path.join(DIST, 'index.html');
  const body = fs.readFileSync(file);
  const gz = /\bgzip\b/.test(req.headers['accept-encoding'] ?? '') && body.length > 1024;
  res.writeHead(200, {
    'Content-Type': TYPES[path.extname(file)] ?? 'application/octet-stream',
    'Cache-Control': file.includes('/assets/') ? 'public, max-age=31536000, immutable' : 'no-cache',
    ...(gz ? { 'Content-Encoding': 'gzip' } : {}),
  });
  res.end(gz ? zlib.gzipSync(body) : body);
}

// ---- routes -------------------------------------------------------------------------
const server = http.createServer((req, res) => {
  const u = new URL(req.url, 'http://x');
  const q = u.searchParams;
  const p = u.pathname;
  try {
    if (p === '/__fixture/source' && req.method === 'POST') {
      source = q.get('value') === 'parquet' ? 'parquet' : 'postgres';
      return json(res, 200, { source });
    }
    if (p === '/api/v2/config') return json(res, 200, { tile_url: process.env.TSI_TILE_URL || null });
    if (p === '/api/v2/openapi.json')
      return json(res, 200, { openapi: '3.1.0', info: { title: 'tsi fixture', version: '0' }, paths: { '/api/v2/config': {} } });
    if (p === '/api/v2/safety/index/' || p === '/api/v2/safety/index') return json(res, 200, items);
    let m;
    if ((m = /^\/api\/v1\/safety\/index\/(\d+)$/.exec(p))) {
      const it = byId.get(Number(m[1]));
      return it ? json(res, 200, it) : json(res, 404, { detail: 'Intersection not found' });
    }
    if ((m = /^\/api\/v1\/safety\/history\/(\d+)(\/stats)?$/.exec(p))) {
      const id = Number(m[1]);
      if (!byId.has(id)) return json(res, 404, { detail: 'Intersection not found' });
      const r = range(q);
      if (m[2]) return json(res, 200, stats(id, r));
      const pts = series(id, r);
      return json(res, 200, {
        intersection_id: id,
        intersection_name: byId.get(id).intersection_name,
        data_points: pts,
        start_date: new Date(r.start).toISOString().slice(0, 10),
        end_date: new Date(r.end).toISOString().slice(0, 10),
        total_points: pts.length,
        aggregation: r.agg,
      });
    }
    if (p === '/api/v2/safety/compare') {
      const ids = (q.get('ids') ?? '').split(',').map(Number).filter((x) => byId.has(x));
      const r = range(q);
      return json(res, 200, {
        start_date: new Date(r.start).toISOString().slice(0, 10),
        end_date: new Date(r.end).toISOString().slice(0, 10),
        intersections: ids.map((id) => stats(id, r)),
        not_found: (q.get('ids') ?? '').split(',').map(Number).filter((x) => !byId.has(x)),
      });
    }
    if (p === '/api/v2/safety/ranking') {
      const r = range(q);
      const metric = q.get('metric') ?? 'avg_si';
      const key = { avg_si: 'avg_safety_index', max_si: 'max_safety_index', min_si: 'min_safety_index', std_si: 'std_safety_index',
        high_risk_minutes: 'high_risk_intervals', high_risk_percentage: 'high_risk_percentage', total_volume: 'total_traffic_volume',
        avg_volume: 'avg_traffic_volume' }[metric];
      if (!key) throw bad('unknown metric', 'metric');
      const order = q.get('order') ?? 'desc';
      let rows = items.map((it) => ({ ...stats(it.intersection_id, r), latitude: it.latitude, longitude: it.longitude }));
      rows = rows.filter((x) => x.avg_safety_index !== null);
      if (q.has('min_index')) rows = rows.filter((x) => x.avg_safety_index >= Number(q.get('min_index')));
      if (q.get('risk_level')) rows = rows.filter((x) => level(x.avg_safety_index) === q.get('risk_level'));
      rows.sort((a, b) => (order === 'asc' ? a[key] - b[key] : b[key] - a[key]) || a.intersection_id - b.intersection_id);
      const limit = Number(q.get('limit') ?? 10);
      return json(res, 200, {
        metric, order, start_date: new Date(r.start).toISOString().slice(0, 10), end_date: new Date(r.end).toISOString().slice(0, 10),
        total: rows.length,
        items: rows.slice(0, limit).map((x, i) => ({ rank: i + 1, value: x[key], ...x })),
      });
    }
    if (p.startsWith('/api/v2/intersections/')) {
      if (source === 'parquet') return json(res, 503, { detail: 'spatial queries need the database', code: 'unavailable' });
      if (p.endsWith('/nearby')) {
        const c = { lat: Number(q.get('lat')), lon: Number(q.get('lon')) }, radius = Number(q.get('radius'));
        if (!Number.isFinite(c.lat) || Math.abs(c.lat) > 90) throw bad('lat out of range', 'lat');
        if (!Number.isFinite(c.lon) || Math.abs(c.lon) > 180) throw bad('lon out of range', 'lon');
        if (!(radius > 0 && radius <= 200000)) throw bad('radius out of range', 'radius');
        const hits = items.map((x) => ({ ...x, distance_m: +haversine(c, { lat: x.latitude, lon: x.longitude }).toFixed(2) })).filter((x) => x.distance_m <= radius);
        hits.sort((a, b) => a.distance_m - b.distance_m);
        return json(res, 200, threshold(hits, q));
      }
      if (p.endsWith('/route')) {
        const wps = JSON.parse(q.get('waypoints') ?? '[]'), buf = Number(q.get('buffer') ?? 100);
        const hits = items.filter((x) => wps.some((a, i) => i > 0 && segDist({ lat: x.latitude, lon: x.longitude }, wps[i - 1], a) <= buf));
        return json(res, 200, threshold(hits, q));
      }
      if (p.endsWith('/area')) {
        const poly = JSON.parse(q.get('polygon') ?? '[]');
        return json(res, 200, threshold(items.filter((x) => inPolygon({ lat: x.latitude, lon: x.longitude }, poly)), q));
      }
      if (p.endsWith('/geometry')) {
        // the lanes of tsi seed's layout, simplified: 2 vehicle lanes and a crosswalk per item
        const b = (q.get('bbox') ?? '').split(',').map(Number);
        if (b.length !== 4 || !b.every(Number.isFinite) || !(b[0] < b[2] && b[1] < b[3])) throw bad('bbox must be four numbers', 'bbox');
        const m0 = 0.005, d = 0.0004, features = [];
        const line = (id, lane, type, pts) => features.push({ type: 'Feature', geometry: { type: 'LineString', coordinates: pts }, properties: { intersection_id: id, lane_id: lane, lane_type: type } });
        let n = 0;
        for (const x of items) {
          const { latitude: la, longitude: lo } = x;
          if (lo < b[0] - m0 || lo > b[2] + m0 || la < b[1] - m0 || la > b[3] + m0) continue;
          n++;
          line(x.intersection_id, 1, 'vehicle', [[lo - d, la], [lo + d, la]]);
          line(x.intersection_id, 2, 'vehicle', [[lo, la - d], [lo, la + d]]);
          line(x.intersection_id, 3, 'crosswalk', [[lo - d / 4, la + d / 4], [lo + d / 4, la + d / 4]]);
        }
        return json(res, 200, { type: 'FeatureCollection', bbox: b, features, intersections: n, truncated: false });
      }
      if ((m = /^\/api\/v1\/intersections\/(\d+)$/.exec(p))) {
        const it = byId.get(Number(m[1]));
        if (!it) return json(res, 404, { detail: 'Intersection not found' });
        const d = 0.0004, { latitude: la, longitude: lo } = it;
        return json(res, 200, {
          id: it.intersection_id,
          name: it.intersection_name,
          latitude: la,
          longitude: lo,
          metadata: {
            // MapData-shaped lane geometry (domain.md §1), as a collector could keep it
            laneSet: [
              { laneID: 1, laneAttributes: { laneType: 'vehicle' }, nodesList: { nodes: [{ delta: { lat: la, lon: lo - d } }, { delta: { lat: la, lon: lo + d } }] } },
              { laneID: 2, laneAttributes: { laneType: 'vehicle' }, nodesList: { nodes: [{ delta: { lat: la - d, lon: lo } }, { delta: { lat: la + d, lon: lo } }] } },
              { laneID: 3, laneAttributes: { laneType: 'crosswalk' }, nodesList: { nodes: [{ delta: { lat: la + d / 4, lon: lo - d / 4 } }, { delta: { lat: la + d / 4, lon: lo + d / 4 } }] } },
            ],
          },
        });
      }
    }
    if (p.startsWith('/api/')) return json(res, 404, { detail: 'Not found' });
    return serveStatic(req, res, p);
  } catch (e) {
    if (e.status) return json(res, e.status, e.body);
    return json(res, 500, { detail: String(e.message ?? e) });
  }
});
server.listen(PORT, '127.0.0.1', () => console.log(`fixture server on http://127.0.0.1:${server.address().port} (${N} intersections, dist ${DIST})`));
process.on('SIGTERM', () => server.close(() => process.exit(0)));
