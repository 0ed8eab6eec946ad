// bench/dashboard.mjs — dashboard load in headless Debian chromium (run by
// bench/dashboard.sh, which starts the server). For RUNS fresh page loads it reads the
// page's Performance API marks:
//   first marker  navigation start → 'tsi:first-marker' (frame after the markers are drawn)
//   TTI           navigation start → 'tsi:interactive' (markers, KPIs, table, handlers ready)
//   history       click on a marker → 'tsi:history-rendered' (measure 'tsi:history')
//   lanes         map.setView(that intersection, zoom 17) → its lane polylines drawn
//                 (geometry request + polylines on the canvas)
// beside references measured in the same run on the same server and browser:
//   blank         navigation to about:blank (the browser's floor)
//   index JSON    fetch of /api/v2/safety/index/ from the page (the API's floor)
//   history JSON  fetch of the same history request from the page
//   geometry JSON fetch of the same lane geometry (bbox of the zoom-17 view) from the page
// Requirement (US-1): map < 1 s, dashboard < 2 s, TTI < 3 s; goal TTI < 1 s.
import { launch } from '../tests/e2e/browser.mjs';

const URL_ = process.env.BENCH_URL;
const RUNS = Number(process.env.BENCH_RUNS ?? 7);
if (!URL_) throw new Error('BENCH_URL is required');

const median = (a) => {
  const s = [...a].sort((x, y) => x - y);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const p = (a, q) => [...a].sort((x, y) => x - y)[Math.min(a.length - 1, Math.floor(q * a.length))];

const { context, close } = await launch();
const r = { first: [], tti: [], dcl: [], hist: [], lanes: [], blank: [], indexJson: [], histJson: [], geoJson: [] };
let nlanes = 0;
let markers = 0;
try {
  for (let i = 0; i < RUNS + 1; i++) {
    const page = await context.newPage();
    const t0 = Date.now();
    await page.goto('about:blank');
    const blank = Date.now() - t0;
    await page.goto(URL_ + '/');
    await page.waitForFunction(() => performance.getEntriesByName('tsi:interactive').length > 0, null, { timeout: 30000 });
    const m = await page.evaluate(() => ({
      first: performance.getEntriesByName('tsi:first-marker')[0].startTime,
      tti: performance.getEntriesByName('tsi:interactive')[0].startTime,
      dcl: performance.getEntriesByType('navigation')[0].domContentLoadedEventEnd,
      markers: window.tsi.markerIds().length,
    }));
    markers = m.markers;
    // the history of the first intersection with data, clicked on the map
    const id = await page.evaluate(() => {
      const ids = window.tsi.markerIds();
      const box = document.getElementById('map').getBoundingClientRect();
      for (const id of ids) {
        const pt = window.tsi.markerPoint(id);
        if (pt && pt.x > 60 && pt.y > 90 && pt.x < box.width - 220 && pt.y < box.height - 60) return id;
      }
      return ids[0];
    });
    await page.evaluate(() => performance.clearMeasures('tsi:history'));
    const pt = await page.evaluate((id) => window.tsi.markerPoint(id), id);
    const box = await page.locator('#map').boundingBox();
    await page.mouse.click(box.x + pt.x, box.y + pt.y);
    await page.waitForFunction(() => performance.getEntriesByName('tsi:history').length > 0, null, { timeout: 30000 });
    const hist = await page.evaluate(() => performance.getEntriesByName('tsi:history')[0].duration);
    const sel = await page.evaluate(() => window.tsi.selected());
    const refs = await page.evaluate(async (sel) => {
      const now = Date.now();
      const d = (ms) => new Date(ms).toISOString().slice(0, 10);
      const t = async (u) => {
        const s = performance.now();
        const res = await fetch(u, { cache: 'no-store' });
        await res.arrayBuffer();
        return performance.now() - s;
      };
      return {
        index: await t('/api/v2/safety/index/'),
        hist: await t(`/api/v2/safety/history/${sel}?start_date=${d(now - 86400000)}&end_date=${d(now)}&aggregation=1min`),
      };
    }, sel);
    // lanes: zoom to the selected intersection
    const lane = await page.evaluate(async (sel) => {
      if (typeof window.tsi.lanes !== 'function') return null; // a dashboard without lanes
      const it = window.tsi.map;
      const pt = window.tsi.markerPoint(sel);
      const ll = it.containerPointToLatLng([pt.x, pt.y]);
      const t0 = performance.now();
      it.setView(ll, 17, { animate: false });
      while (!window.tsi.lanes().some((l) => l.intersection_id === sel)) {
        if (performance.now() - t0 > 20000) throw new Error('no lanes drawn');
        await new Promise((res) => requestAnimationFrame(res));
      }
      const ms = performance.now() - t0;
      const b = it.getBounds();
      const s = performance.now();
      const res = await fetch(`/api/v2/intersections/geometry?bbox=${b.getWest()},${b.getSouth()},${b.getEast()},${b.getNorth()}`, { cache: 'no-store' });
      await res.arrayBuffer();
      return { ms, json: performance.now() - s, n: window.tsi.lanes().length };
    }, sel);
    nlanes = lane?.n ?? 0;
    await page.close();
    if (i === 0) continue; // warm-up: the first load also fills the server's caches
    r.first.push(m.first);
    r.tti.push(m.tti);
    r.dcl.push(m.dcl);
    r.hist.push(hist);
    r.blank.push(blank);
    r.indexJson.push(refs.index);
    r.histJson.push(refs.hist);
    if (lane) {
      r.lanes.push(lane.ms);
      r.geoJson.push(lane.json);
    }
  }
} finally {
  await close();
}

const f = (a) => `${median(a).toFixed(0).padStart(6)} ms (p90 ${p(a, 0.9).toFixed(0)})`;
console.log(`dashboard in headless chromium: ${markers} markers, ${RUNS} loads after one warm-up, medians`);
console.log(`  first marker        ${f(r.first)}   requirement < 1000 ms`);
console.log(`  time to interactive ${f(r.tti)}   requirement < 3000 ms, goal < 1000 ms`);
console.log(`  DOMContentLoaded    ${f(r.dcl)}`);
console.log(`  history chart       ${f(r.hist)}   (click → chart drawn, 24 h at 1 min)`);
if (r.lanes.length) console.log(`  lanes at zoom 17     ${f(r.lanes)}   (setView → ${nlanes} lane polylines drawn, next frame)`);
console.log('references, same run:');
console.log(`  about:blank load    ${f(r.blank)}`);
console.log(`  index JSON fetch    ${f(r.indexJson)}`);
console.log(`  history JSON fetch  ${f(r.histJson)}`);
if (r.geoJson.length) console.log(`  geometry JSON fetch ${f(r.geoJson)}`);
console.log(`  ratio first marker / index JSON fetch: ${(median(r.first) / median(r.indexJson)).toFixed(1)}x`);
const ok = median(r.first) < 1000 && median(r.tti) < 3000;
console.log(`requirement (map < 1 s, TTI < 3 s): ${ok ? 'met' : 'NOT met'}; goal TTI < 1 s: ${median(r.tti) < 1000 ? 'met' : 'not met'}`);
