// History periods: what the details panel asks the API for, and which slice it shows.
// The API takes inclusive UTC dates (YYYY-MM-DD), so a rolling "last 24 h" asks for
// yesterday..today and the chart keeps the points of the last 24 hours.

export const PERIODS = ['24h', '3d', '7d', '14d', '30d', '90d', 'custom'] as const;
export type Period = (typeof PERIODS)[number];

const HOURS: Record<Exclude<Period, 'custom'>, number> = {
  '24h': 24,
  '3d': 72,
  '7d': 168,
  '14d': 336,
  '30d': 720,
  '90d': 2160,
};

const AGG: Record<Exclude<Period, 'custom'>, string> = {
  '24h': '1min',
  '3d': '1hour',
  '7d': '1hour',
  '14d': '1hour',
  '30d': '1day',
  '90d': '1day',
};

export interface HistoryQuery {
  start_date: string;
  end_date: string;
  /** Absent: the API picks by range length (domain.md §6). */
  aggregation?: string;
  /** The shown window, epoch ms [from, to). */
  from: number;
  to: number;
}

export function isoDate(ms: number): string {
  return new Date(ms).toISOString().slice(0, 10);
}

const DATE_RE = /^(\d{4})-(\d{2})-(\d{2})$/;

/** Parses YYYY-MM-DD as a real calendar date (UTC midnight, ms), else null. */
export function parseDate(s: string | null | undefined): number | null {
  if (!s) return null;
  const m = DATE_RE.exec(s);
  if (!m) return null;
  const y = +m[1], mo = +m[2], d = +m[3];
  const ms = Date.UTC(y, mo - 1, d);
  const back = new Date(ms);
  if (back.getUTCFullYear() !== y || back.getUTCMonth() !== mo - 1 || back.getUTCDate() !== d) return null;
  return ms;
}

export const DAY_MS = 86_400_000;

export function historyQuery(p: Period, now: number, start?: string, end?: string): HistoryQuery | null {
  if (p === 'custom') {
    const s = parseDate(start), e = parseDate(end);
    if (s === null || e === null || s > e) return null;
    if ((e - s) / DAY_MS + 1 > 365) return null;
    return { start_date: start!, end_date: end!, from: s, to: e + DAY_MS };
  }
  const from = now - HOURS[p] * 3_600_000;
  return { start_date: isoDate(from), end_date: isoDate(now), aggregation: AGG[p], from, to: now };
}

/** Nominal bucket length of an aggregation, seconds (weeks and months approximate). */
export function bucketSeconds(aggregation: string): number {
  switch (aggregation) {
    case '1min': return 60;
    case '1hour': return 3600;
    case '1day': return 86400;
    case '1week': return 7 * 86400;
    case '1month': return 31 * 86400;
    default: return 0;
  }
}
