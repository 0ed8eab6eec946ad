// Unit tests of the dashboard's pure logic. Expected values are worked out by hand
// in each case (domain.md §4 thresholds, RFC 4180, calendar arithmetic).
import { describe, expect, test } from 'vitest';
import { csvField, toCsv } from '../src/csv';
import { applyFilters, NO_FILTERS, sortItems } from '../src/filters';
import { laneBbox, lanesFromGeoJson, medianSpacing, niceStep } from '../src/lanes';
import { bucketSeconds, historyQuery, parseDate } from '../src/period';
import { itemRisk, markerRadius, noDataLabel, riskColour, riskLevel } from '../src/risk';
import { toColumns } from '../src/series';
import type { IndexItem } from '../src/types';
import { formatView, parseView } from '../src/url';

const item = (id: number, si: number | null, vol: number | null, name = `I${id}`): IndexItem => ({
  intersection_id: id,
  intersection_name: name,
  safety_index: si,
  traffic_volume: vol,
  latitude: 37,
  longitude: -80,
});

describe('risk levels (domain.md §4)', () => {
  test('boundaries: Low < 60, Medium 60–75 inclusive, High > 75', () => {
    expect(riskLevel(59.999)).toBe('Low');
    expect(riskLevel(60)).toBe('Medium');
    expect(riskLevel(75)).toBe('Medium');
    expect(riskLevel(75.0001)).toBe('High');
    expect(riskLevel(0)).toBe('Low');
    expect(riskLevel(100)).toBe('High');
    expect(riskLevel(null)).toBeNull();
    expect(riskLevel(NaN)).toBeNull();
    expect(riskLevel(Infinity)).toBeNull();
  });
  test('colours', () => {
    expect(riskColour('Low')).toBe('#2ECC71');
    expect(riskColour('Medium')).toBe('#F39C12');
    expect(riskColour('High')).toBe('#E74C3C');
  });
  test("the server's risk_level wins when valid, else it is computed", () => {
    expect(itemRisk({ ...item(1, 80, 1), risk_level: 'Low' })).toBe('Low');
    expect(itemRisk({ ...item(1, 80, 1), risk_level: 'medium' })).toBe('Medium');
    expect(itemRisk({ ...item(1, 80, 1), risk_level: '<script>' })).toBe('High');
  });
  test('a stale current answer is no data (grey), labelled with when the data stopped', () => {
    const stale = { ...item(1, 80, 1), risk_level: 'High', timestamp: '2026-12-07T10:05:00Z', stale: true, age_seconds: 900 };
    expect(itemRisk(stale)).toBeNull();
    expect(riskColour(itemRisk(stale))).toBe('#95A5A6');
    const hhmm = (ms: number) => new Date(ms).toISOString().slice(11, 16);
    expect(noDataLabel(stale, hhmm)).toBe('no data since 10:05');
    expect(noDataLabel({ ...stale, timestamp: 'garbage' }, hhmm)).toBe('no data');
    expect(noDataLabel(undefined, hhmm)).toBe('no data');
    expect(itemRisk({ ...stale, stale: false })).toBe('High');
    expect(noDataLabel({ ...stale, stale: false }, hhmm)).toBe('no data');
  });
  test('marker radius: 4 px empty, 14 px at the maximum, area proportional to volume', () => {
    expect(markerRadius(0, 100)).toBe(4);
    expect(markerRadius(null, 100)).toBe(4);
    expect(markerRadius(100, 100)).toBe(14);
    expect(markerRadius(25, 100)).toBe(9); // 4 + 10·√0.25
    expect(markerRadius(1e9, 100)).toBe(14);
    expect(markerRadius(-5, 100)).toBe(4);
    expect(markerRadius(5, 0)).toBe(4);
  });
});

describe('CSV (RFC 4180)', () => {
  test('quoting and escaping', () => {
    expect(csvField('plain')).toBe('plain');
    expect(csvField('a,b')).toBe('"a,b"');
    expect(csvField('say "hi"')).toBe('"say ""hi"""');
    expect(csvField('two\nlines')).toBe('"two\nlines"');
    expect(csvField(null)).toBe('');
    expect(csvField(NaN)).toBe('');
    expect(csvField(1.5)).toBe('1.5');
    expect(csvField(-3)).toBe('-3'); // numbers are never neutralised
  });
  test('formula injection is neutralised', () => {
    expect(csvField('=HYPERLINK("x")')).toBe('"\'=HYPERLINK(""x"")"');
    expect(csvField('+1')).toBe("'+1");
    expect(csvField('@SUM(A1)')).toBe("'@SUM(A1)");
    expect(csvField('-2+3')).toBe("'-2+3");
  });
  test('document', () => {
    expect(toCsv(['a', 'b'], [[1, 'x,y'], [null, 'z']])).toBe('a,b\r\n1,"x,y"\r\n,z\r\n');
  });
});

describe('filters and sort', () => {
  const items = [item(1, 50, 10, 'Main & 1st'), item(2, 70, 100, 'Oak & 2nd'), item(3, 80, 30, 'main & 3rd'), item(4, null, null, 'Elm')];
  test('name search is case-insensitive, id matches exactly', () => {
    expect(applyFilters(items, { ...NO_FILTERS, name: 'MAIN' }).map((i) => i.intersection_id)).toEqual([1, 3]);
    expect(applyFilters(items, { ...NO_FILTERS, name: '4' }).map((i) => i.intersection_id)).toEqual([4]);
  });
  test('ranges are inclusive and exclude missing values', () => {
    expect(applyFilters(items, { ...NO_FILTERS, indexMin: 70 }).map((i) => i.intersection_id)).toEqual([2, 3]);
    expect(applyFilters(items, { ...NO_FILTERS, indexMin: 50, indexMax: 70 }).map((i) => i.intersection_id)).toEqual([1, 2]);
    expect(applyFilters(items, { ...NO_FILTERS, volumeMax: 30 }).map((i) => i.intersection_id)).toEqual([1, 3]);
  });
  test('risk levels', () => {
    expect(applyFilters(items, { ...NO_FILTERS, levels: ['Medium', 'High'] }).map((i) => i.intersection_id)).toEqual([2, 3]);
    expect(applyFilters(items, NO_FILTERS)).toHaveLength(4);
  });
  test('sort keeps missing values last in both directions', () => {
    expect(sortItems(items, 'safety_index', 'desc').map((i) => i.intersection_id)).toEqual([3, 2, 1, 4]);
    expect(sortItems(items, 'safety_index', 'asc').map((i) => i.intersection_id)).toEqual([1, 2, 3, 4]);
    expect(sortItems(items, 'risk_level', 'desc').map((i) => i.intersection_id)).toEqual([3, 2, 1, 4]);
    expect(sortItems(items, 'intersection_name', 'asc').map((i) => i.intersection_name)).toEqual(['Elm', 'main & 3rd', 'Main & 1st', 'Oak & 2nd'].sort((a, b) => a.localeCompare(b)));
  });
});

describe('periods', () => {
  const now = Date.UTC(2026, 10, 25, 10, 30); // 2026-11-25 10:30 UTC
  test('rolling periods ask for whole dates and keep the window', () => {
    expect(historyQuery('24h', now)).toEqual({ start_date: '2026-11-24', end_date: '2026-11-25', aggregation: '1min', from: now - 86_400_000, to: now });
    expect(historyQuery('7d', now)?.start_date).toBe('2026-11-18');
    expect(historyQuery('90d', now)?.start_date).toBe('2026-08-27');
    expect(historyQuery('90d', now)?.aggregation).toBe('1day');
  });
  test('custom ranges: valid dates, start ≤ end, ≤ 365 days', () => {
    expect(historyQuery('custom', now, '2026-01-01', '2026-01-31')).toEqual({
      start_date: '2026-01-01', end_date: '2026-01-31', from: Date.UTC(2026, 0, 1), to: Date.UTC(2026, 1, 1),
    });
    expect(historyQuery('custom', now, '2026-02-01', '2026-01-31')).toBeNull();
    expect(historyQuery('custom', now, '2025-01-01', '2025-12-31')).not.toBeNull(); // 365 days
    expect(historyQuery('custom', now, '2024-01-01', '2024-12-31')).toBeNull(); // 366 (leap year)
    expect(historyQuery('custom', now, '2026-02-30', '2026-03-01')).toBeNull();
  });
  test('date parsing rejects anything but a real YYYY-MM-DD', () => {
    for (const bad of ['', '2026-1-01', '2026-13-01', '2026-02-29', "2026-01-01'; DROP", '20260101', '2026-01-01T00:00']) expect(parseDate(bad)).toBeNull();
    expect(parseDate('2024-02-29')).toBe(Date.UTC(2024, 1, 29));
  });
  test('bucket lengths', () => {
    expect(bucketSeconds('1min')).toBe(60);
    expect(bucketSeconds('1hour')).toBe(3600);
    expect(bucketSeconds('nonsense')).toBe(0);
  });
});

describe('series: gaps stay gaps', () => {
  const t0 = Date.UTC(2026, 10, 25, 0, 0);
  const p = (min: number, si: number | null) => ({ timestamp: new Date(t0 + min * 60000).toISOString(), safety_index: si, traffic_volume: 5 });
  test('a missing minute becomes one null', () => {
    const c = toColumns([p(0, 10), p(1, 20), p(4, 30)], '1min', t0, t0 + 3600_000);
    expect(c.t).toEqual([t0 / 1000, t0 / 1000 + 60, t0 / 1000 + 120, t0 / 1000 + 240]);
    expect(c.index).toEqual([10, 20, null, 30]);
    expect(c.points).toHaveLength(3);
  });
  test('unsorted input is sorted; points outside the window dropped; duplicates once', () => {
    const c = toColumns([p(2, 3), p(-10, 9), p(1, 2), p(1, 7), p(60, 1)], '1min', t0, t0 + 3600_000);
    expect(c.index).toEqual([2, 3]);
  });
  test('null index values stay null and bad timestamps are ignored', () => {
    const c = toColumns([p(0, null), { timestamp: 'garbage', safety_index: 1 }, p(1, 5)], '1min', t0, t0 + 3600_000);
    expect(c.index).toEqual([null, 5]);
  });
});

describe('URL state', () => {
  test('round trip', () => {
    const v = { sel: 12, period: 'custom' as const, start: '2026-01-01', end: '2026-01-07', tab: 'compare' as const };
    expect(parseView(formatView(v))).toEqual(v);
    expect(formatView({ sel: null, period: '24h', start: null, end: null, tab: 'details' })).toBe('');
  });
  test('hostile or malformed values are dropped', () => {
    expect(parseView('?sel=1;drop&period=7d')).toMatchObject({ sel: null, period: '7d' });
    expect(parseView('?sel=-3&period=1y&tab=<x>')).toMatchObject({ sel: null, period: '24h', tab: 'details' });
    expect(parseView('?period=custom&start=2026-02-01&end=2026-01-01')).toMatchObject({ period: '24h', start: null });
    expect(parseView('?sel=99999999999999999999')).toMatchObject({ sel: null });
  });
});

describe('map helpers', () => {
  test('graticule steps are 1, 2 or 5 × 10^k', () => {
    expect(niceStep(0.003)).toBe(0.005);
    expect(niceStep(0.01)).toBeCloseTo(0.01);
    expect(niceStep(1.5)).toBe(2);
    expect(niceStep(7)).toBe(10);
    expect(niceStep(0)).toBe(1);
    expect(niceStep(-1)).toBe(1);
  });
  test('lanes from the geometry endpoint: [lon, lat] to [lat, lon], bad features dropped', () => {
    const fc = {
      type: 'FeatureCollection',
      features: [
        { type: 'Feature', geometry: { type: 'LineString', coordinates: [[-80.1, 37.1], [-80.2, 37.2]] }, properties: { intersection_id: 4, lane_id: 1, lane_type: 'vehicle' } },
        { type: 'Feature', geometry: { type: 'LineString', coordinates: [[0, 95], [-80, 37], ['x', 1]] }, properties: { intersection_id: 4, lane_id: 2 } },
        { type: 'Feature', geometry: { type: 'Point', coordinates: [-80, 37] }, properties: { intersection_id: 4 } },
        { type: 'Feature', geometry: { type: 'LineString', coordinates: [[-80, 37], [-80.1, 37.1]] }, properties: { intersection_id: 5, lane_type: 'crosswalk' } },
        null,
      ],
    };
    expect(lanesFromGeoJson(fc)).toEqual([
      { intersection_id: 4, lane_id: 1, type: 'vehicle', coords: [[37.1, -80.1], [37.2, -80.2]] },
      { intersection_id: 5, lane_id: null, type: 'crosswalk', coords: [[37, -80], [37.1, -80.1]] },
    ]);
    expect(lanesFromGeoJson(null)).toEqual([]);
    expect(lanesFromGeoJson({ features: 'x' })).toEqual([]);
  });
  test('lane bbox: padded by half the view each side, clamped to 1 degree and the world', () => {
    // view 0.01 x 0.02 deg: grown to 0.02 x 0.04 around its centre
    expect(laneBbox(38, -77.02, 38.01, -77)).toEqual([-77.03, 37.995, -76.99, 38.015]);
    // a 3-degree view: at most 1 degree, centred
    expect(laneBbox(10, 20, 13, 23)).toEqual([21, 11, 22, 12]);
    // near the antimeridian and the pole: clamped
    expect(laneBbox(89.9, 179.9, 90, 180)).toEqual([179.85, 89.85, 180, 90]);
  });
  test('median nearest-neighbour spacing', () => {
    const grid = [];
    for (let i = 0; i < 10; i++) for (let j = 0; j < 10; j++) grid.push({ x: i * 10, y: j * 10 });
    expect(medianSpacing(grid)).toBe(10);
    expect(medianSpacing([{ x: 0, y: 0 }, { x: 3, y: 4 }])).toBe(5);
    expect(medianSpacing([{ x: 1, y: 1 }])).toBe(0);
    expect(medianSpacing([])).toBe(0);
    expect(medianSpacing([{ x: 2, y: 2 }, { x: 2, y: 2 }, { x: 50, y: 50 }])).toBe(0); // duplicates
  });
});
