// The view in the URL (?sel=12&period=7d, or period=custom&start=…&end=…, and tab),
// so a view can be shared. Anything malformed is dropped, never trusted.
import { PERIODS, type Period, parseDate } from './period';

export const TABS = ['details', 'spatial', 'compare'] as const;
export type Tab = (typeof TABS)[number];

export interface ViewState {
  sel: number | null;
  period: Period;
  start: string | null;
  end: string | null;
  tab: Tab;
}

export const DEFAULT_VIEW: ViewState = { sel: null, period: '24h', start: null, end: null, tab: 'details' };

export function parseView(search: string): ViewState {
  const q = new URLSearchParams(search);
  const v: ViewState = { ...DEFAULT_VIEW };
  const sel = q.get('sel');
  if (sel && /^\d{1,15}$/.test(sel)) v.sel = Number(sel);
  const p = q.get('period');
  if (p && (PERIODS as readonly string[]).includes(p)) v.period = p as Period;
  const tab = q.get('tab');
  if (tab && (TABS as readonly string[]).includes(tab)) v.tab = tab as Tab;
  if (v.period === 'custom') {
    const s = q.get('start'), e = q.get('end');
    if (parseDate(s) !== null && parseDate(e) !== null && parseDate(s)! <= parseDate(e)!) {
      v.start = s;
      v.end = e;
    } else {
      v.period = DEFAULT_VIEW.period;
    }
  }
  return v;
}

export function formatView(v: ViewState): string {
  const q = new URLSearchParams();
  if (v.sel !== null) q.set('sel', String(v.sel));
  if (v.period !== DEFAULT_VIEW.period) q.set('period', v.period);
  if (v.period === 'custom' && v.start && v.end) {
    q.set('start', v.start);
    q.set('end', v.end);
  }
  if (v.tab !== DEFAULT_VIEW.tab) q.set('tab', v.tab);
  const s = q.toString();
  return s ? '?' + s : '';
}
