// Browser tests of the dashboard: Debian chromium (playwright-core) against a running
// server. scripts/e2e starts `tsi serve` on seeded data (or, with --fixture, the fixture
// server) and sets:
//   TSI_E2E_URL          the server answering from PostgreSQL (required)
//   TSI_E2E_STALE_URL    a server with --stale-seconds 1: every intersection is silent
//                        (optional: the stale test is skipped without it)
//   TSI_E2E_PARQUET_URL  a server answering from the Parquet fallback (optional; with the
//                        fixture server, TSI_E2E_FIXTURE=1 switches its source instead)
//   TSI_E2E_ARTIFACTS    where screenshots go (default build-e2e/artifacts)
// Every expectation is computed here from the API's own answers (fetched by the test,
// not by the page) or by hand, never read back from the page under test.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { launch } from './browser.mjs';

const BASE = (process.env.TSI_E2E_URL ?? 'http://127.0.0.1:8099').replace(/\/$/, '');
const PARQUET = process.env.TSI_E2E_PARQUET_URL?.replace(/\/$/, '');
const STALE = process.env.TSI_E2E_STALE_URL?.replace(/\/$/, ''); // --stale-seconds 1
const FIXTURE = process.env.TSI_E2E_FIXTURE === '1';
const ART = path.resolve(process.env.TSI_E2E_ARTIFACTS ?? 'build-e2e/artifacts');
fs.mkdirSync(ART, { recursive: true });

let ctx, closeBrowser;
const problems = []; // console errors and page errors, per test

before(async () => {
  ({ context: ctx, close: closeBrowser } = await launch());
});
after(async () => {
  await closeBrowser?.();
});

async function api(pathAndQuery, base = BASE) {
  const r = await fetch(base + pathAndQuery);
  const body = await r.json();
  return { status: r.status, body, source: r.headers.get('x-data-source') };
}

async function open(url, beforeGoto) {
  const page = await ctx.newPage();
  if (beforeGoto) await beforeGoto(page);
  page.on('console', (m) => {
    if (m.type() === 'error') problems.push(`console: ${m.text()} @ ${m.location()?.url ?? ''}`);
  });
  page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
  page.on('requestfailed', (r) => problems.push(`requestfailed: ${r.url()} ${r.failure()?.errorText}`));
  await page.goto(url);
  await page.waitForFunction(() => window.tsi && performance.getEntriesByName('tsi:interactive').length > 0, null, { timeout: 15000, polling: 100 });
  return page;
}

async function shot(page, name) {
  const file = path.join(ART, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  assert.ok(fs.statSync(file).size > 10_000, `screenshot ${file} is not empty`);
}

function noProblems() {
  const p = problems.splice(0);
  assert.deepEqual(p, [], 'no console errors, page errors or failed requests');
}

/** Haversine distance in metres (mean Earth radius), computed here, not by the page. */
function haversine(a, b) {
  const rad = (d) => (d * Math.PI) / 180;
  const h = Math.sin(rad(b.lat - a.lat) / 2) ** 2 + Math.cos(rad(a.lat)) * Math.cos(rad(b.lat)) * Math.sin(rad(b.lon - a.lon) / 2) ** 2;
  return 2 * 6371008.8 * Math.asin(Math.min(1, Math.sqrt(h)));
}

/** An intersection with data whose marker has no other marker within 30 px on screen. */
async function isolatedMarker(page, items) {
  const pts = await page.evaluate((ids) => ids.map((id) => [id, window.tsi.markerPoint(id)]), items.map((i) => i.intersection_id));
  const box = await page.locator('#map').boundingBox();
  const withData = new Set(items.filter((i) => typeof i.safety_index === 'number').map((i) => i.intersection_id));
  for (const [id, p] of pts) {
    if (!withData.has(id) || !p || p.x < 40 || p.y < 80 || p.x > box.width - 200 || p.y > box.height - 60) continue;
    if (pts.every(([o, q]) => o === id || !q || Math.hypot(q.x - p.x, q.y - p.y) > 30)) return { id, x: box.x + p.x, y: box.y + p.y };
  }
  return null;
}

describe('dashboard', () => {
  test('one marker per intersection, KPIs and table from /safety/index/', async () => {
    const { body: items, source } = await api('/api/v2/safety/index/');
    assert.ok(Array.isArray(items) && items.length > 0, 'the server has seeded intersections');
    assert.notEqual(source, 'parquet');
    const page = await open(BASE + '/');
    const ids = await page.evaluate(() => window.tsi.markerIds());
    assert.deepEqual([...ids].sort((a, b) => a - b), items.map((i) => i.intersection_id).sort((a, b) => a - b));
    assert.equal(await page.locator('#kpi-count').textContent(), items.length.toLocaleString('en-US'));
    const high = items.filter((i) => typeof i.safety_index === 'number' && i.safety_index > 75).length;
    assert.ok((await page.locator('#kpi-high').textContent()).startsWith(`${high} (`));
    assert.equal(await page.locator('#table tbody tr').count(), items.length);
    assert.equal(await page.locator('#fallback-banner').isVisible(), false, 'no fallback banner on PostgreSQL');
    const newest = Math.max(...items.map((i) => (i.timestamp ? Date.parse(i.timestamp) : -Infinity)));
    if (Number.isFinite(newest)) {
      const hhmmss = new Date(newest).toISOString().slice(11, 19); // the browser runs in UTC
      assert.equal(await page.locator('#kpi-fresh').textContent(), `as of ${hhmmss}`);
    }
    // Static assets: the page is revalidated, content-hashed assets are cached for good.
    const home = await fetch(BASE + '/');
    assert.match(home.headers.get('cache-control') ?? '', /no-cache/);
    const scripts = [...(await home.text()).matchAll(/(?:src|href)="(\/assets\/[^"]+)"/g)].map((x) => x[1]);
    assert.ok(scripts.length >= 2, 'index.html refers to its bundled script and style');
    for (const a of scripts) {
      const r = await fetch(BASE + a);
      assert.equal(r.status, 200, a);
      assert.match(r.headers.get('cache-control') ?? '', /immutable/, `${a} is cached as immutable`);
    }
    const marks = await page.evaluate(() => ['tsi:first-marker', 'tsi:interactive'].map((n) => performance.getEntriesByName(n).length));
    assert.deepEqual(marks, [1, 1]);
    await shot(page, '01-overview');
    await page.close();
    noProblems();
  });

  test('clicking a marker opens its details and draws its history', async () => {
    const { body: items } = await api('/api/v2/safety/index/');
    const page = await open(BASE + '/');
    const m = await isolatedMarker(page, items);
    assert.ok(m, 'an isolated marker to click');
    const item = items.find((i) => i.intersection_id === m.id);
    await page.mouse.click(m.x, m.y);
    await page.waitForSelector('#details:not([hidden])');
    assert.equal(await page.locator('#d-name').textContent(), item.intersection_name);
    assert.equal(await page.locator('#d-index').textContent(), item.safety_index.toFixed(1));
    assert.equal(new URL(page.url()).searchParams.get('sel'), String(m.id));
    await page.waitForFunction(() => document.querySelector('#chart')?.dataset.rendered, null, { timeout: 15000 });
    assert.ok((await page.locator('#chart canvas').count()) >= 1, 'a chart canvas');
    const shown = Number(await page.locator('#chart').getAttribute('data-points'));
    // The 24 h view asks for yesterday..today at 1 min and keeps the last 24 h.
    const now = Date.now();
    const d = (ms) => new Date(ms).toISOString().slice(0, 10);
    const { body: h } = await api(`/api/v2/safety/history/${m.id}?start_date=${d(now - 86400000)}&end_date=${d(now)}&aggregation=1min`);
    const inWindow = h.data_points.filter((p) => Date.parse(p.timestamp) >= now - 86400000 - 120000).length;
    assert.ok(shown > 0, 'history points drawn');
    assert.ok(Math.abs(shown - inWindow) <= 3, `chart shows the API's last-24 h points (${shown} vs ${inWindow})`);
    const { body: st } = await api(`/api/v2/safety/history/${m.id}/stats?start_date=${d(now - 86400000)}&end_date=${d(now)}`);
    const avgCard = await page.locator('#stats .card', { hasText: 'Average' }).locator('.v').textContent();
    assert.equal(avgCard, st.avg_safety_index === null ? '—' : st.avg_safety_index.toFixed(1));
    assert.equal((await page.evaluate(() => performance.getEntriesByName('tsi:history').length)) >= 1, true);
    await shot(page, '02-details');
    const [sdl] = await Promise.all([page.waitForEvent('download'), page.click('#export-series')]);
    const series = fs.readFileSync(await sdl.path(), 'utf8').trim().split(/\r\n/);
    assert.equal(series[0], 'timestamp,safety_index,vru_index,vehicle_index,traffic_volume,hour_of_day,day_of_week');
    assert.equal(series.length, shown + 1, 'one line per point drawn');

    // A custom range asks the API for exactly those dates.
    await page.click('.periods button[data-period="custom"]');
    await page.fill('#c-start', d(now - 2 * 86400000));
    await page.fill('#c-end', d(now - 86400000));
    const [hreq] = await Promise.all([
      page.waitForRequest((r) => r.url().includes(`/api/v2/safety/history/${m.id}?`) && r.url().includes(`start_date=${d(now - 2 * 86400000)}`)),
      page.click('#custom-range button[type="submit"]'),
    ]);
    const hq = new URL(hreq.url()).searchParams;
    assert.deepEqual([hq.get('start_date'), hq.get('end_date'), hq.get('aggregation')], [d(now - 2 * 86400000), d(now - 86400000), null]);
    await page.waitForFunction((s) => document.querySelector('#chart-status').textContent.includes(s), `${d(now - 2 * 86400000)} to ${d(now - 86400000)}`);
    const cu = new URL(page.url()).searchParams;
    assert.deepEqual([cu.get('period'), cu.get('start'), cu.get('end')], ['custom', d(now - 2 * 86400000), d(now - 86400000)]);

    // Period change goes into the URL; a shared URL restores the view; refresh keeps it.
    await page.click('.periods button[data-period="7d"]');
    await page.waitForFunction(() => new URL(location.href).searchParams.get('period') === '7d');
    const shared = page.url();
    await page.close();
    // The page's clock is driven by the test so that the 60 s auto-refresh can be seen
    // (the fake clock also replaces performance, so this page is watched by its requests).
    // A clock belongs to a whole browser context: this page gets a browser of its own.
    const own = await launch();
    try {
      const again = await own.context.newPage();
      again.on('console', (x) => x.type() === 'error' && problems.push(`console: ${x.text()}`));
      again.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
      let indexLoads = 0;
      again.on('requestfinished', (r) => r.url().endsWith('/api/v2/safety/index/') && indexLoads++);
      await again.clock.install({ time: Date.now() });
      await again.goto(shared);
      await again.waitForSelector('#details:not([hidden])');
      await again.waitForFunction(() => window.tsi.markerIds().length > 0, null, { polling: 100 });
      assert.equal(await again.locator('#d-name').textContent(), item.intersection_name);
      assert.equal(await again.locator('.periods button.active').getAttribute('data-period'), '7d');
      await again.clock.runFor(58_000);
      await again.waitForTimeout(300);
      assert.equal(indexLoads, 1, 'no refresh before 60 s');
      const refreshed = again.waitForResponse((r) => r.url().endsWith('/api/v2/safety/index/'), { timeout: 10000 });
      await again.clock.runFor(2_500);
      await refreshed;
      for (let i = 0; i < 50 && indexLoads < 2; i++) await new Promise((r) => setTimeout(r, 100));
      assert.equal(indexLoads, 2, 'one refresh after 60 s');
      await again.waitForTimeout(300); // let the page apply it
      assert.equal(await again.evaluate(() => window.tsi.selected()), m.id, 'refresh keeps the selection');
      assert.equal(await again.locator('#d-name').textContent(), item.intersection_name);
      assert.equal(new URL(again.url()).searchParams.get('sel'), String(m.id));
    } finally {
      await own.close();
    }
    noProblems();
  });

  test('a radius query highlights exactly the API result', async () => {
    const { body: items } = await api('/api/v2/safety/index/');
    const page = await open(BASE + '/?tab=spatial');
    await page.check('input[name="mode"][value="point"]');
    const radius = 800;
    await page.fill('#s-radius', String(radius));
    const m = await isolatedMarker(page, items);
    await page.mouse.click(m.x, m.y);
    const [c] = await page.evaluate(() => window.tsi.drawPoints());
    await page.click('#s-run');
    await page.waitForFunction(() => /found/.test(document.querySelector('#spatial-status').textContent));
    const { body: hits } = await api(`/api/v2/intersections/nearby?lat=${c.lat}&lon=${c.lon}&radius=${radius}`);
    const want = hits.map((h) => h.intersection_id).sort((a, b) => a - b);
    const got = (await page.evaluate(() => window.tsi.highlightedIds())).sort((a, b) => a - b);
    assert.ok(want.length >= 2, `a meaningful query (${want.length} hits)`);
    assert.deepEqual(got, want);
    assert.equal(await page.locator('#spatial-results li').count(), want.length);
    // The API's answer itself agrees with a distance computed here (0.5 % for the spheroid).
    for (const it of items) {
      const dist = haversine(c, { lat: it.latitude, lon: it.longitude });
      if (dist < radius * 0.995) assert.ok(want.includes(it.intersection_id), `${it.intersection_id} at ${dist} m is a hit`);
      if (dist > radius * 1.005) assert.ok(!want.includes(it.intersection_id), `${it.intersection_id} at ${dist} m is not a hit`);
    }
    await shot(page, '03-radius');

    // Threshold filter: only hits with index >= 60.
    await page.fill('#s-min', '60');
    await page.click('#s-run');
    const { body: hits60 } = await api(`/api/v2/intersections/nearby?lat=${c.lat}&lon=${c.lon}&radius=${radius}&min_index=60`);
    await page.waitForFunction((n) => window.tsi.highlightedIds().length === n, hits60.length);
    assert.deepEqual((await page.evaluate(() => window.tsi.highlightedIds())).sort(), hits60.map((h) => h.intersection_id).sort());
    assert.ok(hits60.every((h) => h.safety_index >= 60));
    await page.close();
    noProblems();
  });

  test('route + buffer and polygon queries highlight exactly the API result', async () => {
    const { body: items } = await api('/api/v2/safety/index/');
    const page = await open(BASE + '/?tab=spatial');
    const m = await isolatedMarker(page, items);
    const ids = async () => (await page.evaluate(() => window.tsi.highlightedIds())).sort((a, b) => a - b);
    const sorted = (hits) => hits.map((h) => h.intersection_id).sort((a, b) => a - b);

    await page.check('input[name="mode"][value="route"]');
    await page.fill('#s-buffer', '150');
    await page.mouse.click(m.x - 120, m.y + 3);
    await page.mouse.click(m.x + 120, m.y - 3);
    const route = await page.evaluate(() => window.tsi.drawPoints());
    assert.equal(route.length, 2);
    await page.click('#s-run');
    await page.waitForFunction(() => /found/.test(document.querySelector('#spatial-status').textContent));
    const { body: rhits } = await api(`/api/v2/intersections/route?waypoints=${encodeURIComponent(JSON.stringify(route))}&buffer=150`);
    assert.ok(sorted(rhits).includes(m.id), 'the route passes over the clicked marker');
    assert.deepEqual(await ids(), sorted(rhits));
    assert.equal(await page.locator('#spatial-results li').count(), rhits.length);
    await shot(page, '06-route');

    await page.check('input[name="mode"][value="polygon"]');
    for (const [dx, dy] of [[-70, -70], [70, -70], [70, 70], [-70, 70]]) await page.mouse.click(m.x + dx, m.y + dy);
    const poly = await page.evaluate(() => window.tsi.drawPoints());
    assert.equal(poly.length, 4);
    await page.click('#s-run');
    await page.waitForFunction(() => /found/.test(document.querySelector('#spatial-status').textContent));
    const { body: ahits } = await api(`/api/v2/intersections/area?polygon=${encodeURIComponent(JSON.stringify(poly))}`);
    assert.ok(sorted(ahits).includes(m.id), 'the polygon contains the clicked marker');
    assert.deepEqual(await ids(), sorted(ahits));
    await shot(page, '07-polygon');
    await page.close();
    noProblems();
  });

  test('a hostile intersection name is shown as text everywhere', async () => {
    const { body: items } = await api('/api/v2/safety/index/');
    const bad = items.find((i) => i.intersection_name.includes('<img'));
    assert.ok(bad, 'the seeded data has the hostile name (scripts/e2e sets it)');
    const page = await open(BASE + `/?sel=${bad.intersection_id}`);
    await page.waitForSelector('#details:not([hidden])');
    assert.equal(await page.locator('#d-name').textContent(), bad.intersection_name);
    await page.fill('#f-name', 'onerror');
    await page.waitForFunction(() => document.querySelectorAll('#table tbody tr').length === 1);
    assert.equal(await page.locator('#table tbody tr td:nth-child(2)').textContent(), bad.intersection_name);
    const pt = await page.evaluate((id) => window.tsi.markerPoint(id), bad.intersection_id);
    const box = await page.locator('#map').boundingBox();
    await page.mouse.move(box.x + pt.x, box.y + pt.y);
    await page.waitForSelector('.leaflet-tooltip');
    assert.ok((await page.locator('.leaflet-tooltip b').textContent()) === bad.intersection_name);
    assert.equal(await page.locator('img[src="x"]').count(), 0, 'no element made from the name');
    assert.equal(await page.evaluate(() => window.__xss), undefined);
    // CSV: quoted (comma, quotes) and neutralised (leading =)
    const [dl] = await Promise.all([page.waitForEvent('download'), page.click('#export-table')]);
    const line = fs.readFileSync(await dl.path(), 'utf8').split('\r\n')[1];
    assert.ok(line.startsWith(`${bad.intersection_id},"'=1+2 <img src=x onerror=""window.__xss=1""> & ""Quote"", Comma",`), line);
    await page.close();
    noProblems();
  });

  test('filters, sorting and CSV export of the table', async () => {
    const { body: items } = await api('/api/v2/safety/index/');
    const page = await open(BASE + '/');
    await page.fill('#f-imin', '60');
    const want = items.filter((i) => typeof i.safety_index === 'number' && i.safety_index >= 60).length;
    await page.waitForFunction((n) => document.querySelectorAll('#table tbody tr').length === n, want);
    await page.click('#table th[data-sort="safety_index"]'); // default is descending: now ascending
    const vals = (await page.locator('#table tbody tr td:nth-child(3)').allTextContents()).map(Number);
    assert.deepEqual(vals, [...vals].sort((a, b) => a - b));
    const [dl] = await Promise.all([page.waitForEvent('download'), page.click('#export-table')]);
    const csv = fs.readFileSync(await dl.path(), 'utf8').trim().split(/\r\n/);
    assert.equal(csv.length, want + 1, 'header + one line per visible row');
    assert.match(csv[0], /^intersection_id,intersection_name,safety_index,risk_level/);
    await page.close();
    noProblems();
  });

  test('compare and rank draw a table and small multiples', async () => {
    const page = await open(BASE + '/?tab=compare');
    await page.check('input[name="cmode"][value="rank"]');
    await page.fill('#r-limit', '4');
    await page.click('#c-run');
    await page.waitForFunction(() => document.querySelectorAll('#multiples .multiple').length > 0, null, { timeout: 15000 });
    const now = Date.now();
    const d = (ms) => new Date(ms).toISOString().slice(0, 10);
    const { body } = await api(`/api/v2/safety/ranking?metric=avg_si&order=desc&limit=4&start_date=${d(now - 6 * 86400000)}&end_date=${d(now)}`);
    const rows = Array.isArray(body) ? body : body.items;
    assert.equal(await page.locator('#compare-table tbody tr').count(), rows.length);
    assert.deepEqual(
      (await page.locator('#compare-table tbody tr').evaluateAll((trs) => trs.map((t) => Number(t.dataset.id)))),
      rows.map((r) => r.intersection_id),
    );
    assert.equal(await page.locator('#multiples .multiple').count(), rows.length);
    await shot(page, '04-rank');

    // Ranking with a threshold: the request carries it and the table is the API's answer.
    await page.fill('#r-min', '20');
    await page.selectOption('#r-risk', 'Low');
    const [rreq] = await Promise.all([page.waitForRequest((r) => r.url().includes('/api/v2/safety/ranking?') && r.url().includes('risk_level=')), page.click('#c-run')]);
    const rq = new URL(rreq.url()).searchParams;
    assert.deepEqual([rq.get('min_index'), rq.get('risk_level')], ['20', 'Low']);
    const { body: lowBody } = await api(`/api/v2/safety/ranking?metric=avg_si&order=desc&limit=4&min_index=20&risk_level=Low&start_date=${d(now - 6 * 86400000)}&end_date=${d(now)}`);
    const low = Array.isArray(lowBody) ? lowBody : lowBody.items;
    assert.ok(low.length > 0 && low.every((r) => r.avg_safety_index >= 20 && r.avg_safety_index < 60), 'the API applied the threshold');
    await page.waitForFunction((n) => document.querySelectorAll('#compare-table tbody tr').length === n && !/loading/.test(document.querySelector('#compare-status').textContent), low.length);
    assert.deepEqual(await page.locator('#compare-table tbody tr').evaluateAll((trs) => trs.map((t) => Number(t.dataset.id))), low.map((r) => r.intersection_id));
    await page.fill('#r-min', '');
    await page.selectOption('#r-risk', '');

    // Compare two intersections ticked in the table: one row each, the API's statistics.
    const { body: items } = await api('/api/v2/safety/index/');
    const pick = items.filter((i) => typeof i.safety_index === 'number').slice(0, 2).map((i) => i.intersection_id);
    await page.fill('#f-name', '');
    for (const id of pick) await page.check(`#table tbody tr[data-id="${id}"] input.cmp`);
    await page.check('input[name="cmode"][value="compare"]');
    await page.click('#c-run');
    await page.waitForFunction(() => /intersections? ·/.test(document.querySelector('#compare-status').textContent) && document.querySelectorAll('#multiples .multiple').length === 2, null, { timeout: 15000 });
    const { body: cmp } = await api(`/api/v2/safety/compare?ids=${pick.join(',')}&start_date=${d(now - 6 * 86400000)}&end_date=${d(now)}`);
    const crow = cmp.intersections ?? cmp;
    assert.deepEqual(
      (await page.locator('#compare-table tbody tr').evaluateAll((trs) => trs.map((t) => Number(t.dataset.id)))).sort(),
      crow.map((r) => r.intersection_id).sort(),
    );
    assert.equal(crow.length, 2);
    await shot(page, '08-compare');
    await page.close();
    noProblems();
  });

  test('zooming in to an intersection draws its lanes (MapData geometry from the API)', async () => {
    const geometryAsks = [];
    const page = await open(BASE + '/', (p) => p.on('request', (r) => r.url().includes('/intersections/geometry') && geometryAsks.push(r.url())));
    // the fitted view of every intersection is below the lane zoom: nothing drawn or asked
    assert.ok(await page.evaluate(() => window.tsi.map.getZoom()) < 16);
    assert.deepEqual(await page.evaluate(() => window.tsi.lanes()), []);
    assert.equal(geometryAsks.length, 0, 'no lane request below zoom 16');
    const { body: items } = await api('/api/v2/safety/index/');
    const it = items.find((i) => typeof i.safety_index === 'number') ?? items[0];
    const id = it.intersection_id, lat = it.latitude, lon = it.longitude;
    // what the API holds for it (asked by the test, for a box of its own)
    const { status, body: fc } = await api(`/api/v2/intersections/geometry?bbox=${lon - 0.001},${lat - 0.001},${lon + 0.001},${lat + 0.001}`);
    assert.equal(status, 200);
    const want = fc.features.filter((f) => f.properties.intersection_id === id);
    assert.ok(want.length >= 3, `the seeded intersection ${id} has lanes (${want.length})`);
    await page.evaluate(([la, lo]) => void window.tsi.map.setView([la, lo], 18, { animate: false }), [lat, lon]);
    await page.waitForFunction((id) => window.tsi.lanes().some((l) => l.intersection_id === id), id, { timeout: 10000, polling: 100 });
    const drawn = (await page.evaluate(() => window.tsi.lanes())).filter((l) => l.intersection_id === id);
    assert.equal(drawn.length, want.length, 'one polyline per lane of the API');
    const key = (l) => `${l.lane_id}:${l.type}`;
    assert.deepEqual(drawn.map(key).sort(), want.map((f) => `${f.properties.lane_id ?? null}:${f.properties.lane_type ?? 'other'}`).sort());
    assert.ok(drawn.every((l) => l.visible), 'every lane of the intersection is in view at zoom 18');
    assert.ok(drawn.every((l) => l.dashed === (l.type === 'crosswalk')), 'crosswalks dashed, other lanes solid');
    assert.equal(await page.locator('#map').getAttribute('data-lanes'), String((await page.evaluate(() => window.tsi.lanes())).length));
    // painted: halfway between the last two nodes of each vehicle lane (positions from the
    // API, away from the marker), the map's canvas holds the lane grey (#8c9499)
    const mids = want
      .filter((f) => f.properties.lane_type === 'vehicle')
      .map((f) => {
        const c = f.geometry.coordinates, a = c[c.length - 2], b = c[c.length - 1];
        return [(a[1] + b[1]) / 2, (a[0] + b[0]) / 2];
      });
    assert.ok(mids.length > 0);
    const painted = await page.evaluate(async (mids) => {
      await new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
      const map = window.tsi.map, cv = document.querySelector('#map .leaflet-overlay-pane canvas');
      const mr = map.getContainer().getBoundingClientRect(), cr = cv.getBoundingClientRect();
      const g = cv.getContext('2d');
      return mids.map(([la, lo]) => {
        const p = map.latLngToContainerPoint([la, lo]);
        const x = Math.round((mr.left + p.x - cr.left) * (cv.width / cr.width)), y = Math.round((mr.top + p.y - cr.top) * (cv.height / cr.height));
        const d = g.getImageData(x - 2, y - 2, 5, 5).data;
        for (let i = 0; i < d.length; i += 4)
          if (d[i + 3] > 40 && Math.abs(d[i] - 140) < 40 && Math.abs(d[i + 1] - 148) < 40 && Math.abs(d[i + 2] - 153) < 40) return true;
        return false;
      });
    }, mids);
    assert.deepEqual(painted, mids.map(() => true), 'every vehicle lane is painted on the map canvas');
    await shot(page, '09-lanes');
    // a small pan stays inside the area already loaded: no new request
    const asked = geometryAsks.length;
    await page.evaluate(() => void window.tsi.map.panBy([40, 0], { animate: false }));
    await page.waitForTimeout(300);
    assert.equal(geometryAsks.length, asked, 'a small pan reuses the lanes already loaded');
    // zooming back out removes them
    await page.evaluate(() => void window.tsi.map.setZoom(14, { animate: false }));
    await page.waitForFunction(() => window.tsi.lanes().length === 0, null, { timeout: 5000 });
    await page.close();
    noProblems();
  });

  test('without TSI_TILE_URL no request leaves this machine', async () => {
    const asked = [];
    const local = (u) => /^(data|blob):/.test(u) || ['127.0.0.1', 'localhost', '[::1]'].includes(new URL(u).hostname);
    const page = await open(BASE + '/', async (p) => {
      await p.route('**/*', (route) => {
        const u = route.request().url();
        asked.push(u);
        return local(u) ? route.continue() : route.abort('blockedbyclient');
      });
    });
    // zoom in and out and pan: a tile layer, fonts or scripts from elsewhere would be asked now
    const { body: items } = await api('/api/v2/safety/index/');
    await page.evaluate(([la, lo]) => void window.tsi.map.setView([la, lo], 17, { animate: false }), [items[0].latitude, items[0].longitude]);
    await page.waitForFunction(() => window.tsi.lanes().length > 0, null, { timeout: 10000 });
    await page.evaluate(() => void window.tsi.map.setZoom(12, { animate: false }));
    await page.waitForTimeout(500);
    assert.ok(asked.length > 3, 'the page was recorded');
    assert.deepEqual(asked.filter((u) => !local(u)), [], 'only this machine is asked');
    assert.equal(await page.locator('.leaflet-tile').count(), 0, 'no tile layer');
    assert.equal(await page.locator('#map.with-tiles').count(), 0);
    await page.close();
    noProblems();
  });

  test('TSI_TILE_URL adds a tile layer (a local tile server, rendered tiles)', async () => {
    const TILES = process.env.TSI_E2E_TILES_URL?.replace(/\/$/, '');
    const TILE_SERVER = process.env.TSI_E2E_TILE_SERVER?.replace(/\/$/, '');
    assert.ok(TILES && TILE_SERVER, 'scripts/e2e starts a tile server and a tsi serve with TSI_TILE_URL (TSI_E2E_TILES_URL, TSI_E2E_TILE_SERVER)');
    const { body: cfg } = await api('/api/v2/config', TILES);
    assert.equal(cfg.tile_url, `${TILE_SERVER}/{z}/{x}/{y}.png`, 'the server hands its TSI_TILE_URL to the page');
    const before = (await (await fetch(TILE_SERVER + '/__requests')).json()).count;
    const page = await open(TILES + '/');
    await page.waitForFunction(() => document.querySelectorAll('img.leaflet-tile-loaded').length > 0, null, { timeout: 15000, polling: 100 });
    await page.waitForTimeout(500); // let the rest of the view's tiles arrive
    const imgs = await page.evaluate(() =>
      [...document.querySelectorAll('img.leaflet-tile-loaded')].map((i) => ({ src: i.src, w: i.naturalWidth, h: i.naturalHeight, done: i.complete })),
    );
    assert.ok(imgs.length > 0);
    for (const i of imgs) {
      assert.match(i.src, new RegExp(`^${TILE_SERVER.replace(/[.]/g, '\\.')}/\\d+/\\d+/\\d+\\.png$`));
      assert.deepEqual([i.w, i.h, i.done], [256, 256, true], `tile ${i.src} decoded as a 256×256 image`);
    }
    const rec = await (await fetch(TILE_SERVER + '/__requests')).json();
    const served = new Set(rec.paths.slice(before));
    assert.ok(rec.count - before >= imgs.length, 'the tile server was asked for every tile shown');
    for (const i of imgs) assert.ok(served.has(new URL(i.src).pathname), `${i.src} came from the tile server`);
    assert.equal(await page.locator('#map.with-tiles').count(), 1);
    await shot(page, '10-tiles');
    await page.close();
    noProblems();
  });

  test('a silent intersection is greyed: no data since its last minute', { skip: !STALE && 'no --stale-seconds server (fixture run)' }, async () => {
    const { body } = await api('/api/v2/safety/index/', STALE);
    const withData = body.filter((i) => typeof i.safety_index === 'number');
    assert.ok(withData.length > 0 && withData.every((i) => i.stale === true && i.age_seconds >= 1), 'the server says every current answer is stale');
    const page = await open(STALE + '/');
    const grey = await page.evaluate((ids) => ids.map((id) => window.tsi.markerColour?.(id) ?? null), withData.map((i) => i.intersection_id));
    assert.ok(grey.every((c) => c === '#95A5A6'), `every marker grey: ${grey.join(' ')}`);
    const badges = await page.locator('#table tbody .risk').allTextContents();
    assert.ok(badges.length > 0 && badges.every((t) => /^no data since \d\d:\d\d:\d\d$/.test(t)), `table badges: ${badges.slice(0, 3).join(' | ')}`);
    await page.close();
    noProblems();
  });

  test('the fallback banner appears when the API answers from Parquet', async () => {
    let base = PARQUET;
    if (!base && FIXTURE) {
      await fetch(BASE + '/__fixture/source?value=parquet', { method: 'POST' });
      base = BASE;
    }
    assert.ok(base, 'TSI_E2E_PARQUET_URL (a tsi serve --source parquet) or the fixture server');
    try {
      const { source } = await api('/api/v2/safety/index/', base);
      assert.equal(source, 'parquet', 'the server reports Parquet');
      const page = await open(base + '/');
      await page.waitForSelector('#fallback-banner:not([hidden])');
      assert.ok(await page.locator('#fallback-banner').isVisible());
      if (!FIXTURE) // tsi says since when (X-Data-Source-Since); the banner shows it
        assert.match(await page.locator('#fallback-since').textContent(), /^ Since \d\d:\d\d:\d\d\.$/);
      await shot(page, '05-fallback');
      await page.close();
    } finally {
      if (!PARQUET && FIXTURE) await fetch(BASE + '/__fixture/source?value=postgres', { method: 'POST' });
    }
    noProblems();
  });
});
