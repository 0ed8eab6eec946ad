// The tsi dashboard: wires the map, KPIs, table, details, spatial tools and
// compare/rank to the API. Plain TypeScript and the DOM of index.html.
import './style.css';
import type uPlot from 'uplot';
import { api, ApiError, loadConfig } from './api';
import { download, toCsv } from './csv';
import { applyFilters, NO_FILTERS, sortItems, type Filters, type SortKey } from './filters';
import { lanesFromGeoJson } from './lanes';
import { TsiMap, type Mode } from './map';
import { DAY_MS, historyQuery, isoDate, parseDate, PERIODS, type Period } from './period';
import { HIGH_THRESHOLD, itemRisk, noDataLabel, riskColour } from './risk';
import { toColumns, type Columns } from './series';
import type { DataSource, History, IndexItem, RiskLevel, StatRow, Stats } from './types';
import { formatView, parseView, TABS, type Tab, type ViewState } from './url';

performance.mark('tsi:start');

const REFRESH_MS = 60_000;

const $ = <T extends HTMLElement = HTMLElement>(id: string): T => {
  const el = document.getElementById(id);
  if (!el) throw new Error(`missing #${id}`);
  return el as T;
};
const esc = (s: unknown): string => String(s ?? '').replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
const fmt = (v: number | null | undefined, d = 1): string => (v === null || v === undefined || !Number.isFinite(v) ? '—' : v.toFixed(d));
const fmtInt = (v: number | null | undefined): string =>
  v === null || v === undefined || !Number.isFinite(v) ? '—' : Math.round(v).toLocaleString('en-US');
const timeOf = (ms: number): string => new Date(ms).toLocaleTimeString('en-GB', { hour12: false });

// ---------------------------------------------------------------- state
const state = {
  items: [] as IndexItem[],
  byId: new Map<number, IndexItem>(),
  source: 'unknown' as DataSource,
  filters: { ...NO_FILTERS } as Filters,
  sortKey: 'safety_index' as SortKey,
  sortDir: 'desc' as 'asc' | 'desc',
  view: parseView(location.search) as ViewState,
  compareIds: [] as number[],
  spatialResults: null as IndexItem[] | null,
  lastSpatialMode: null as Mode | null,
  lastSpatialPoints: null as { lat: number; lon: number }[] | null,
  lastSpatialDistance: 0, // radius or buffer of the last search, metres
  history: null as { id: number; hist: History; cols: Columns } | null,
  chart: null as uPlot | null,
  multiples: [] as uPlot[],
  loadedOnce: false,
  tableLimit: 200, // rows drawn; "show more" draws the rest (1,000 rows cost ~0.5 s of layout)
  historySeq: 0,
};

const tsiMap = new TsiMap($('map'), {
  onSelect: (id) => select(id),
  onDrawChange: () => updateSpatialHelp(),
});
tsiMap.lanesLoader = async (bbox, signal) => lanesFromGeoJson((await api.geometry(bbox, signal)).data);

// Test and benchmark hooks (read-only views of what is on screen).
(window as unknown as { tsi: unknown }).tsi = {
  markerIds: () => tsiMap.markerIds(),
  markerPoint: (id: number) => tsiMap.markerPoint(id),
  markerColour: (id: number) => tsiMap.markerColour(id),
  highlightedIds: () => tsiMap.highlightedIds(),
  lanes: () => tsiMap.lanesDrawn(),
  drawPoints: () => tsiMap.drawPoints.map((p) => ({ lat: p.lat, lon: p.lng })),
  selected: () => state.view.sel,
  source: () => state.source,
  refresh: () => loadIndex(),
  map: tsiMap.map,
};

// ---------------------------------------------------------------- index + KPIs
async function loadIndex(): Promise<void> {
  const status = $('refresh-status');
  status.textContent = 'updating…';
  try {
    const f = await api.index();
    if (!Array.isArray(f.data)) throw new Error('unexpected answer from /safety/index/');
    state.items = f.data;
    state.byId = new Map(f.data.map((it) => [it.intersection_id, it]));
    setSource(f.source, f.since);
    $('error-banner').hidden = true;
    performance.mark('tsi:index-loaded');
    tsiMap.setItems(state.items);
    if (!state.loadedOnce) {
      requestAnimationFrame(() => performance.mark('tsi:first-marker'));
    }
    renderKpis();
    renderTable();
    if (state.view.sel !== null) renderDetailsHead();
    status.textContent = `updated ${timeOf(Date.now())}`;
    if (state.loadedOnce) {
      // Refresh what depends on "now" without touching the user's selection.
      if (state.view.sel !== null && state.view.period !== 'custom') void loadHistory(false);
      if (state.spatialResults) void runSpatial(true);
    }
  } catch (e) {
    showError(`Could not load the current index: ${(e as Error).message}`);
    status.textContent = 'update failed';
  } finally {
    if (!state.loadedOnce) {
      state.loadedOnce = true;
      if (state.view.sel !== null) select(state.view.sel, true);
      requestAnimationFrame(() => setTimeout(() => performance.mark('tsi:interactive'), 0));
    }
  }
}

function setSource(s: DataSource, since?: number): void {
  state.source = s;
  $('fallback-banner').hidden = s !== 'parquet';
  $('fallback-since').textContent = s === 'parquet' && since !== undefined ? ` Since ${timeOf(since)}.` : '';
  const badge = $('source-badge');
  badge.hidden = s === 'unknown';
  badge.textContent = s === 'parquet' ? 'source: Parquet' : 'source: PostgreSQL';
  badge.className = 'badge ' + (s === 'parquet' ? 'warn' : 'ok');
}

function showError(msg: string): void {
  const b = $('error-banner');
  b.textContent = msg;
  b.hidden = false;
}

function renderKpis(): void {
  const items = state.items;
  const withIdx = items.filter((i) => typeof i.safety_index === 'number' && Number.isFinite(i.safety_index));
  const avg = withIdx.length ? withIdx.reduce((s, i) => s + (i.safety_index as number), 0) / withIdx.length : null;
  const high = withIdx.filter((i) => (i.safety_index as number) > HIGH_THRESHOLD).length;
  const vol = items.reduce((s, i) => s + (i.traffic_volume ?? 0), 0);
  let newest = -Infinity;
  for (const i of items) {
    const t = i.timestamp ? Date.parse(i.timestamp) : NaN;
    if (Number.isFinite(t) && t > newest) newest = t;
  }
  $('kpi-count').textContent = fmtInt(items.length);
  $('kpi-avg').textContent = fmt(avg);
  $('kpi-high').textContent = items.length ? `${high} (${((100 * high) / items.length).toFixed(1)} %)` : '—';
  $('kpi-volume').textContent = fmtInt(vol);
  const fresh = Number.isFinite(newest) ? `as of ${timeOf(newest)}` : `as of ${timeOf(Date.now())} (fetched)`;
  $('kpi-fresh').textContent = fresh;
  $('kpi-fresh').title = Number.isFinite(newest) ? new Date(newest).toISOString() : 'no timestamps in the answer: time of fetch';
  $('freshness').textContent = fresh;
}

// ---------------------------------------------------------------- table + filters
function readFilters(): Filters {
  const num = (id: string): number | null => {
    const v = $<HTMLInputElement>(id).value.trim();
    if (v === '') return null;
    const n = Number(v);
    return Number.isFinite(n) ? n : null;
  };
  const levels = [...document.querySelectorAll<HTMLInputElement>('input[name="level"]:checked')].map((x) => x.value as RiskLevel);
  return { name: $<HTMLInputElement>('f-name').value, indexMin: num('f-imin'), indexMax: num('f-imax'), volumeMin: num('f-vmin'), volumeMax: num('f-vmax'), levels };
}

function visibleItems(): IndexItem[] {
  return sortItems(applyFilters(state.items, state.filters), state.sortKey, state.sortDir);
}

function renderTable(): void {
  const rows = visibleItems();
  const sel = state.view.sel;
  const cmp = new Set(state.compareIds);
  const html: string[] = [];
  for (const it of rows.slice(0, state.tableLimit)) {
    const r = itemRisk(it);
    html.push(
      `<tr tabindex="0" data-id="${it.intersection_id}"${it.intersection_id === sel ? ' class="selected"' : ''}>` +
        `<td>${it.intersection_id}</td><td>${esc(it.intersection_name)}</td><td class="num">${fmt(it.safety_index)}</td>` +
        `<td><span class="risk" style="background:${riskColour(r)}">${r ?? esc(noDataLabel(it, timeOf))}</span></td>` +
        `<td class="num">${fmtInt(it.traffic_volume)}</td><td class="num">${fmtInt(it.vru_count)}</td>` +
        `<td>${it.timestamp ? esc(timeOf(Date.parse(it.timestamp))) : '—'}</td>` +
        `<td><input type="checkbox" class="cmp" aria-label="compare" ${cmp.has(it.intersection_id) ? 'checked' : ''}></td></tr>`,
    );
  }
  if (rows.length > state.tableLimit)
    html.push(`<tr class="more"><td colspan="8"><button type="button" id="table-more">Show ${Math.min(500, rows.length - state.tableLimit)} more of ${rows.length - state.tableLimit} not shown</button></td></tr>`);
  document.querySelector('#table tbody')!.innerHTML = html.join('');
  $('table-count').textContent = `${rows.length} of ${state.items.length}`;
  for (const th of document.querySelectorAll<HTMLElement>('#table th[data-sort]')) {
    th.classList.toggle('sorted', th.dataset.sort === state.sortKey);
    th.dataset.dir = th.dataset.sort === state.sortKey ? state.sortDir : '';
    th.setAttribute('aria-sort', th.dataset.sort === state.sortKey ? (state.sortDir === 'asc' ? 'ascending' : 'descending') : 'none');
  }
}

function wireTable(): void {
  const form = $<HTMLFormElement>('filters');
  const onChange = () => {
    state.filters = readFilters();
    renderTable();
  };
  form.addEventListener('input', onChange);
  form.addEventListener('change', onChange);
  form.addEventListener('reset', () => setTimeout(onChange, 0));
  form.addEventListener('submit', (e) => e.preventDefault());
  for (const th of document.querySelectorAll<HTMLElement>('#table th[data-sort]')) {
    th.tabIndex = 0;
    const sort = () => {
      const k = th.dataset.sort as SortKey;
      if (state.sortKey === k) state.sortDir = state.sortDir === 'asc' ? 'desc' : 'asc';
      else {
        state.sortKey = k;
        state.sortDir = k === 'intersection_name' || k === 'intersection_id' ? 'asc' : 'desc';
      }
      renderTable();
    };
    th.addEventListener('click', sort);
    th.addEventListener('keydown', (e) => (e.key === 'Enter' || e.key === ' ') && sort());
  }
  document.querySelector('#table tbody')!.addEventListener('click', (e) => {
    const t = e.target as HTMLElement;
    if (t.id === 'table-more') {
      state.tableLimit += 500;
      renderTable();
      return;
    }
    const tr = t.closest('tr');
    if (!tr || !tr.dataset.id) return;
    const id = Number(tr.dataset.id);
    if (t.classList.contains('cmp')) {
      toggleCompare(id, (t as HTMLInputElement).checked);
      return;
    }
    select(id, true);
  });
  document.querySelector('#table tbody')!.addEventListener('keydown', (e) => {
    const ev = e as KeyboardEvent;
    const tr = (ev.target as HTMLElement).closest('tr');
    if (ev.key === 'Enter' && tr?.dataset.id && (ev.target as HTMLElement).tagName === 'TR') select(Number(tr.dataset.id), true);
  });
  $('export-table').addEventListener('click', () => {
    const rows = visibleItems();
    const header = ['intersection_id', 'intersection_name', 'safety_index', 'risk_level', 'traffic_volume', 'vru_count', 'latitude', 'longitude', 'timestamp',
      'combined_index', 'combined_index_eb', 'vru_index', 'vru_index_eb', 'vehicle_index', 'vehicle_index_eb'];
    download(
      `tsi-intersections-${isoDate(Date.now())}.csv`,
      toCsv(header, rows.map((it) => header.map((h) => (h === 'risk_level' ? itemRisk(it) : (it as unknown as Record<string, string | number | null>)[h])))),
    );
  });
}

// ---------------------------------------------------------------- selection + details
function setView(patch: Partial<ViewState>): void {
  state.view = { ...state.view, ...patch };
  const url = location.pathname + formatView(state.view) + location.hash;
  if (url !== location.pathname + location.search + location.hash) history.replaceState(null, '', url);
}

function select(id: number, pan = false): void {
  const changed = state.view.sel !== id;
  setView({ sel: id });
  showTab('details');
  tsiMap.select(id, pan);
  for (const tr of document.querySelectorAll('#table tbody tr.selected')) tr.classList.remove('selected');
  document.querySelector(`#table tbody tr[data-id="${id}"]`)?.classList.add('selected');
  renderDetailsHead();
  if (changed || !state.history || state.history.id !== id) {
    void loadHistory(true);
  }
}

function renderDetailsHead(): void {
  const id = state.view.sel;
  if (id === null) return;
  const it = state.byId.get(id);
  $('details-empty').hidden = true;
  $('details').hidden = false;
  $('d-name').textContent = it?.intersection_name ?? `Intersection ${id}`;
  const r = it ? itemRisk(it) : null;
  const badge = $('d-risk');
  badge.textContent = r ?? noDataLabel(it, timeOf);
  badge.style.background = riskColour(r);
  $('d-meta').textContent = it
    ? `#${id} · ${it.latitude.toFixed(5)}, ${it.longitude.toFixed(5)}${it.timestamp ? ' · as of ' + timeOf(Date.parse(it.timestamp)) : ''}`
    : `#${id} · not in the current index`;
  $('d-vru').textContent = fmt(it?.vru_index);
  $('d-vru-eb').textContent = fmt(it?.vru_index_eb);
  $('d-veh').textContent = fmt(it?.vehicle_index);
  $('d-veh-eb').textContent = fmt(it?.vehicle_index_eb);
  $('d-comb').textContent = fmt(it?.combined_index);
  $('d-comb-eb').textContent = fmt(it?.combined_index_eb);
  $('d-volume').textContent = fmtInt(it?.traffic_volume);
  $('d-vru-count').textContent = fmtInt(it?.vru_count);
  $('d-index').textContent = fmt(it?.safety_index);
  for (const b of document.querySelectorAll<HTMLElement>('.periods button')) b.classList.toggle('active', b.dataset.period === state.view.period);
  $('custom-range').hidden = state.view.period !== 'custom';
}

async function loadHistory(showLoading: boolean): Promise<void> {
  const id = state.view.sel;
  if (id === null) return;
  const seq = ++state.historySeq;
  const q = historyQuery(state.view.period, Date.now(), state.view.start ?? undefined, state.view.end ?? undefined);
  const status = $('chart-status');
  if (!q) {
    status.textContent = 'Choose a start and end date (at most 365 days).';
    return;
  }
  if (showLoading) status.textContent = 'loading history…';
  performance.mark('tsi:history-start');
  try {
    const [h, s] = await Promise.all([
      api.history(id, { start_date: q.start_date, end_date: q.end_date, aggregation: q.aggregation }),
      api.stats(id, { start_date: q.start_date, end_date: q.end_date }).catch((e: unknown) => ({ error: e as Error })),
    ]);
    if (seq !== state.historySeq) return; // a newer request won
    const cols = toColumns(h.data.data_points ?? [], h.data.aggregation, q.from, q.to);
    state.history = { id, hist: h.data, cols };
    await drawChart(cols);
    if (seq !== state.historySeq) return;
    renderStats('error' in s ? null : s.data, 'error' in s ? s.error : null);
    status.textContent =
      `${cols.points.length} points · ${h.data.aggregation} · ${q.start_date} to ${q.end_date}` + (h.source === 'parquet' ? ' · from Parquet' : '');
    requestAnimationFrame(() => {
      performance.mark('tsi:history-rendered');
      performance.measure('tsi:history', 'tsi:history-start', 'tsi:history-rendered');
      $('chart').dataset.points = String(cols.points.length);
      $('chart').dataset.rendered = String(seq);
    });
  } catch (e) {
    if (seq !== state.historySeq) return;
    status.textContent = `History unavailable: ${(e as Error).message}`;
    state.chart?.destroy();
    state.chart = null;
    $('stats').innerHTML = '';
  }
}

// The chart code (uPlot) loads on first use: the map and table do not wait for it.
const chartModule = () => import('./chart');

async function drawChart(cols: Columns): Promise<void> {
  const { historyChart } = await chartModule();
  const el = $('chart');
  state.chart?.destroy();
  el.innerHTML = '';
  const width = Math.max(280, el.clientWidth || $('side').clientWidth - 24);
  state.chart = historyChart(el, cols, { width, height: 240 });
  if (cols.points.length === 0) {
    const p = document.createElement('p');
    p.className = 'muted empty-chart';
    p.textContent = 'No data in this period.';
    el.appendChild(p);
  }
}

function renderStats(s: Stats | null, err: Error | null): void {
  const el = $('stats');
  if (!s) {
    el.innerHTML = `<p class="muted">Statistics unavailable${err ? ': ' + esc(err.message) : ''}.</p>`;
    return;
  }
  const card = (label: string, v: string) => `<div class="card"><span class="v">${v}</span><span class="l">${label}</span></div>`;
  el.innerHTML =
    card('Average', fmt(s.avg_safety_index)) +
    card('Minimum', fmt(s.min_safety_index)) +
    card('Maximum', fmt(s.max_safety_index)) +
    card('Std dev', fmt(s.std_safety_index, 2)) +
    card('Total volume', fmtInt(s.total_traffic_volume)) +
    card('Avg volume', fmt(s.avg_traffic_volume)) +
    card('High-risk intervals', fmtInt(s.high_risk_intervals)) +
    card('High-risk share', s.high_risk_percentage === null || s.high_risk_percentage === undefined ? '—' : `${fmt(s.high_risk_percentage)} %`);
}

function wireDetails(): void {
  for (const b of document.querySelectorAll<HTMLElement>('.periods button')) {
    b.addEventListener('click', () => {
      const p = b.dataset.period as Period;
      if (!(PERIODS as readonly string[]).includes(p)) return;
      if (p === 'custom') {
        const end = state.view.end ?? isoDate(Date.now());
        const start = state.view.start ?? isoDate(Date.now() - 6 * DAY_MS);
        $<HTMLInputElement>('c-start').value = start;
        $<HTMLInputElement>('c-end').value = end;
        setView({ period: 'custom', start, end });
      } else setView({ period: p, start: null, end: null });
      renderDetailsHead();
      void loadHistory(true);
    });
  }
  $('custom-range').addEventListener('submit', (e) => {
    e.preventDefault();
    const start = $<HTMLInputElement>('c-start').value, end = $<HTMLInputElement>('c-end').value;
    if (parseDate(start) === null || parseDate(end) === null || parseDate(start)! > parseDate(end)!) {
      $('chart-status').textContent = 'The start must be a date on or before the end.';
      return;
    }
    setView({ period: 'custom', start, end });
    void loadHistory(true);
  });
  $('export-series').addEventListener('click', () => {
    const h = state.history;
    if (!h) return;
    const header = ['timestamp', 'safety_index', 'vru_index', 'vehicle_index', 'traffic_volume', 'hour_of_day', 'day_of_week'];
    download(
      `tsi-history-${h.id}-${h.hist.aggregation}-${h.hist.start_date}_${h.hist.end_date}.csv`,
      toCsv(header, h.cols.points.map((p) => header.map((k) => (p as unknown as Record<string, string | number | null>)[k]))),
    );
  });
  $('add-compare').addEventListener('click', () => state.view.sel !== null && toggleCompare(state.view.sel, true));
  $('share').addEventListener('click', () => {
    void navigator.clipboard?.writeText(location.href).catch(() => undefined);
    $('chart-status').textContent = 'Link to this view copied (it is also the address bar).';
  });
  window.addEventListener('resize', () => {
    if (state.chart) state.chart.setSize({ width: Math.max(280, $('chart').clientWidth), height: 240 });
  });
}

// ---------------------------------------------------------------- tabs
function showTab(t: Tab): void {
  for (const name of TABS) {
    $(`tab-${name}`).hidden = name !== t;
    document.querySelector(`.tabs [data-tab="${name}"]`)?.setAttribute('aria-selected', String(name === t));
  }
  if (t !== state.view.tab) setView({ tab: t });
  tsiMap.setMode(t === 'spatial' ? spatialMode() : 'none');
  updateSpatialHelp();
  if (t === 'details' && state.chart) state.chart.setSize({ width: Math.max(280, $('chart').clientWidth), height: 240 });
}

// ---------------------------------------------------------------- spatial
function spatialMode(): Mode {
  return (document.querySelector<HTMLInputElement>('input[name="mode"]:checked')?.value as Mode) ?? 'point';
}

function updateSpatialHelp(): void {
  const m = tsiMap.mode;
  const n = tsiMap.drawPoints.length;
  const help =
    m === 'point'
      ? n ? 'Point set: adjust the radius, then Search (or click elsewhere to move it).' : 'Click the map to set the centre.'
      : m === 'route'
        ? `Click the map to add route points (${n} so far, at least 2), then Search.`
        : m === 'polygon'
          ? `Click the map to add corners (${n} so far, at least 3), then Search.`
          : '';
  $('spatial-help').textContent = help;
  $('s-radius').parentElement!.hidden = m !== 'point';
  $('s-buffer').parentElement!.hidden = m !== 'route';
}

function spatialThreshold(): { min: number | null; risk: string | null } {
  const v = $<HTMLInputElement>('s-min').value.trim();
  const n = v === '' ? null : Number(v);
  return { min: n !== null && Number.isFinite(n) ? n : null, risk: $<HTMLSelectElement>('s-risk').value || null };
}

async function runSpatial(quiet = false): Promise<void> {
  // An auto-refresh (quiet) re-runs the last search, whatever is being drawn meanwhile.
  const useLast = quiet || tsiMap.mode === 'none';
  const m = useLast ? state.lastSpatialMode : tsiMap.mode;
  const pts = (useLast ? state.lastSpatialPoints : tsiMap.drawPoints.map((p) => ({ lat: p.lat, lon: p.lng }))) ?? [];
  const st = $('spatial-status');
  const { min, risk } = spatialThreshold();
  const need = m === 'point' ? 1 : m === 'route' ? 2 : 3;
  if (!m || pts.length < need) {
    st.textContent = m === 'point' ? 'Click the map first.' : `Draw at least ${need} points first.`;
    return;
  }
  if (!quiet) st.textContent = 'searching…';
  try {
    let r;
    const dist = useLast ? state.lastSpatialDistance : Number($<HTMLInputElement>(m === 'point' ? 's-radius' : 's-buffer').value);
    if (m === 'point') {
      r = await api.nearby({ lat: pts[0].lat, lon: pts[0].lon, radius: dist, min_index: min, risk_level: risk });
    } else if (m === 'route') {
      r = await api.route(pts, dist, min, risk);
    } else {
      r = await api.area(pts, min, risk);
    }
    state.lastSpatialMode = m;
    state.lastSpatialPoints = pts;
    state.lastSpatialDistance = dist;
    state.spatialResults = r.data;
    tsiMap.highlight(r.data.map((x) => x.intersection_id));
    renderSpatialResults();
    st.textContent = `${r.data.length} intersection${r.data.length === 1 ? '' : 's'} found`;
  } catch (e) {
    const msg = e instanceof ApiError && e.status === 503 ? 'Spatial search is unavailable while the database is down (Parquet fallback).' : (e as Error).message;
    st.textContent = `Search failed: ${msg}`;
  }
}

function renderSpatialResults(): void {
  const res = state.spatialResults ?? [];
  $('spatial-results').innerHTML = res
    .map((it) => {
      const r = itemRisk(it);
      const d = typeof it.distance_m === 'number' ? ` · ${fmtInt(it.distance_m)} m` : '';
      return `<li data-id="${it.intersection_id}"><span class="dot" style="background:${riskColour(r)}"></span><b>${esc(it.intersection_name)}</b> <span class="muted">#${it.intersection_id} · index ${fmt(it.safety_index)}${d}</span></li>`;
    })
    .join('');
}

function wireSpatial(): void {
  for (const r of document.querySelectorAll<HTMLInputElement>('input[name="mode"]')) {
    r.addEventListener('change', () => {
      tsiMap.setMode(spatialMode());
      clearSpatial();
    });
  }
  $('s-radius').addEventListener('input', () => tsiMap.setRadius(Math.max(1, Number($<HTMLInputElement>('s-radius').value) || 1)));
  $('s-run').addEventListener('click', () => void runSpatial());
  $('s-undo').addEventListener('click', () => {
    const pts = tsiMap.drawPoints.slice(0, -1).map((p) => ({ lat: p.lat, lon: p.lng }));
    tsiMap.setDrawPoints(pts);
  });
  $('s-clear').addEventListener('click', () => {
    tsiMap.clearDrawing();
    clearSpatial();
  });
  $('s-export').addEventListener('click', () => {
    const res = state.spatialResults ?? [];
    const header = ['intersection_id', 'intersection_name', 'safety_index', 'risk_level', 'traffic_volume', 'distance_m', 'latitude', 'longitude'];
    download(`tsi-spatial-${isoDate(Date.now())}.csv`, toCsv(header, res.map((it) => header.map((h) => (h === 'risk_level' ? itemRisk(it) : (it as unknown as Record<string, string | number | null>)[h])))));
  });
  $('spatial-results').addEventListener('click', (e) => {
    const li = (e.target as HTMLElement).closest('li');
    if (li) select(Number(li.dataset.id), true);
  });
  tsiMap.setRadius(Number($<HTMLInputElement>('s-radius').value));
}

function clearSpatial(): void {
  state.spatialResults = null;
  state.lastSpatialPoints = null;
  tsiMap.highlight(null);
  $('spatial-results').innerHTML = '';
  $('spatial-status').textContent = '';
  updateSpatialHelp();
}

// ---------------------------------------------------------------- compare + rank
function toggleCompare(id: number, on: boolean): void {
  const set = new Set(state.compareIds);
  if (on) set.add(id);
  else set.delete(id);
  state.compareIds = [...set].slice(0, 12);
  renderChips();
  const cb = document.querySelector<HTMLInputElement>(`#table tbody tr[data-id="${id}"] input.cmp`);
  if (cb) cb.checked = state.compareIds.includes(id);
}

function renderChips(): void {
  $('compare-chosen').innerHTML = state.compareIds.length
    ? state.compareIds
        .map((id) => `<span class="chip" data-id="${id}">${esc(state.byId.get(id)?.intersection_name ?? '#' + id)} <button type="button" aria-label="remove">×</button></span>`)
        .join('')
    : '<span class="muted">Tick "Cmp" in the table or use "Add to comparison" in the details (up to 12).</span>';
}

const METRIC_LABELS: Record<string, string> = {
  avg_si: 'Average index',
  avg_safety_index: 'Average index',
  max_si: 'Maximum index',
  max_safety_index: 'Maximum index',
  min_safety_index: 'Minimum index',
  std_safety_index: 'Std dev',
  high_risk_minutes: 'High-risk minutes',
  high_risk_intervals: 'High-risk intervals',
  high_risk_percentage: 'High-risk %',
  data_minutes: 'Minutes of data',
  risk_level: 'Risk',
  total_volume: 'Total volume',
  total_traffic_volume: 'Total volume',
  avg_traffic_volume: 'Avg volume',
  value: 'Value',
  rank: 'Rank',
};

let compareRows: StatRow[] = [];

async function runCompare(): Promise<void> {
  const mode = document.querySelector<HTMLInputElement>('input[name="cmode"]:checked')?.value ?? 'compare';
  const days = Number($<HTMLSelectElement>('r-period').value);
  const now = Date.now();
  const p = { start_date: isoDate(now - (days - 1) * DAY_MS), end_date: isoDate(now) };
  const st = $('compare-status');
  st.textContent = 'loading…';
  try {
    let rows: StatRow[];
    if (mode === 'compare') {
      if (state.compareIds.length === 0) {
        st.textContent = 'Choose intersections first.';
        return;
      }
      rows = (await api.compare(state.compareIds, p)).data;
    } else {
      const limit = Math.min(100, Math.max(1, Number($<HTMLInputElement>('r-limit').value) || 10));
      const rmin = $<HTMLInputElement>('r-min').value.trim();
      rows = (
        await api.ranking({
          metric: $<HTMLSelectElement>('r-metric').value,
          order: $<HTMLSelectElement>('r-order').value,
          limit,
          min_index: rmin !== '' && Number.isFinite(Number(rmin)) ? Number(rmin) : null,
          risk_level: $<HTMLSelectElement>('r-risk').value || null,
          ...p,
        })
      ).data;
    }
    compareRows = rows;
    renderCompareTable(rows);
    st.textContent = `${rows.length} intersection${rows.length === 1 ? '' : 's'} · ${p.start_date} to ${p.end_date}`;
    await renderMultiples(rows.slice(0, 12).map((r) => r.intersection_id), p, days);
  } catch (e) {
    st.textContent = `Failed: ${(e as Error).message}`;
  }
}

// Columns of /compare and /ranking rows the table leaves out (the period is in the status line).
const HIDDEN_COLUMNS = new Set(['period_start', 'period_end', 'latitude', 'longitude', 'metric']);

function renderCompareTable(rows: StatRow[]): void {
  const keys: string[] = [];
  for (const r of rows) for (const k of Object.keys(r)) if (!keys.includes(k) && typeof r[k] !== 'object' && !HIDDEN_COLUMNS.has(k)) keys.push(k);
  const order = ['rank', 'intersection_id', 'intersection_name', 'value'];
  keys.sort((a, b) => (order.indexOf(a) + 1 || 99) - (order.indexOf(b) + 1 || 99));
  const head = keys.map((k) => `<th>${esc(METRIC_LABELS[k] ?? k.replace(/_/g, ' '))}</th>`).join('');
  const body = rows
    .map(
      (r) =>
        `<tr data-id="${r.intersection_id}">` +
        keys.map((k) => {
          const v = r[k];
          return typeof v === 'number' ? `<td class="num">${Number.isInteger(v) ? v : v.toFixed(2)}</td>` : `<td>${esc(v ?? '')}</td>`;
        }).join('') +
        '</tr>',
    )
    .join('');
  $('compare-table').innerHTML = `<thead><tr>${head}</tr></thead><tbody>${body}</tbody>`;
}

async function renderMultiples(ids: number[], p: { start_date: string; end_date: string }, days: number): Promise<void> {
  for (const u of state.multiples) u.destroy();
  state.multiples = [];
  const box = $('multiples');
  box.innerHTML = '';
  const agg = days <= 1 ? '1hour' : days <= 14 ? '1hour' : '1day';
  const from = parseDate(p.start_date)!, to = parseDate(p.end_date)! + DAY_MS;
  const [{ historyChart }, results] = await Promise.all([
    chartModule(),
    Promise.all(ids.map((id) => api.history(id, { ...p, aggregation: agg }).catch(() => null))),
  ]);
  results.forEach((h, i) => {
    const cell = document.createElement('div');
    cell.className = 'multiple';
    cell.dataset.id = String(ids[i]);
    box.appendChild(cell);
    const name = h?.data.intersection_name ?? state.byId.get(ids[i])?.intersection_name ?? `#${ids[i]}`;
    if (!h) {
      cell.innerHTML = `<p class="muted">${esc(name)}: no history</p>`;
      return;
    }
    const cols = toColumns(h.data.data_points ?? [], h.data.aggregation, from, to);
    const width = Math.max(160, Math.floor((box.clientWidth - 6) / 2) - 2);
    state.multiples.push(historyChart(cell, cols, { width, height: 130, compact: true, title: name }));
  });
}

function wireCompare(): void {
  $('c-run').addEventListener('click', () => void runCompare());
  $('c-clear').addEventListener('click', () => {
    for (const id of [...state.compareIds]) toggleCompare(id, false);
  });
  $('compare-chosen').addEventListener('click', (e) => {
    const chip = (e.target as HTMLElement).closest<HTMLElement>('.chip');
    if (chip && (e.target as HTMLElement).tagName === 'BUTTON') toggleCompare(Number(chip.dataset.id), false);
  });
  $('compare-table').addEventListener('click', (e) => {
    const tr = (e.target as HTMLElement).closest<HTMLElement>('tbody tr');
    if (tr) select(Number(tr.dataset.id), true);
  });
  const syncMode = () => {
    const rank = document.querySelector<HTMLInputElement>('input[name="cmode"]:checked')?.value === 'rank';
    for (const id of ['metric-wrap', 'order-wrap', 'limit-wrap', 'rmin-wrap', 'rrisk-wrap']) $(id).hidden = !rank;
    $('compare-chosen').hidden = rank;
  };
  for (const r of document.querySelectorAll('input[name="cmode"]')) r.addEventListener('change', syncMode);
  syncMode();
  $('c-export').addEventListener('click', () => {
    if (!compareRows.length) return;
    const keys: string[] = [];
    for (const r of compareRows) for (const k of Object.keys(r)) if (!keys.includes(k) && typeof r[k] !== 'object') keys.push(k);
    download(`tsi-compare-${isoDate(Date.now())}.csv`, toCsv(keys, compareRows.map((r) => keys.map((k) => r[k] as string | number | null))));
  });
  renderChips();
}

// ---------------------------------------------------------------- start
async function start(): Promise<void> {
  wireTable();
  wireDetails();
  wireSpatial();
  wireCompare();
  for (const b of document.querySelectorAll<HTMLElement>('.tabs button')) b.addEventListener('click', () => showTab(b.dataset.tab as Tab));
  $('refresh-now').addEventListener('click', () => void loadIndex());
  if (state.view.period === 'custom' && state.view.start && state.view.end) {
    $<HTMLInputElement>('c-start').value = state.view.start;
    $<HTMLInputElement>('c-end').value = state.view.end;
  }
  showTab(state.view.sel === null && state.view.tab === 'details' ? 'details' : state.view.tab);
  await loadIndex();
  void loadConfig().then((c) => {
    if (typeof c.tile_url === 'string' && /^(https?:\/\/|\/)/.test(c.tile_url)) tsiMap.addTiles(c.tile_url, c.tile_attribution);
  });
  setInterval(() => void loadIndex(), REFRESH_MS);
}

void start();
