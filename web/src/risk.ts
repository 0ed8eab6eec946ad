// Risk levels and colours of domain.md §4: Low < 60, Medium 60–75 inclusive, High > 75.
import type { IndexItem, RiskLevel } from './types';

export const RISK_COLOURS: Record<RiskLevel, string> = {
  Low: '#2ECC71',
  Medium: '#F39C12',
  High: '#E74C3C',
};
export const NO_DATA_COLOUR = '#95A5A6';
export const MEDIUM_THRESHOLD = 60;
export const HIGH_THRESHOLD = 75;

export function riskLevel(index: number | null | undefined): RiskLevel | null {
  if (index === null || index === undefined || !Number.isFinite(index)) return null;
  if (index > HIGH_THRESHOLD) return 'High';
  if (index >= MEDIUM_THRESHOLD) return 'Medium';
  return 'Low';
}

/** The item's level: the server's risk_level when it is one of the three, else computed;
 *  none (grey, "no data") when the server says the current answer is stale. */
export function itemRisk(it: IndexItem): RiskLevel | null {
  if (it.stale === true) return null;
  const s = it.risk_level;
  if (s === 'Low' || s === 'Medium' || s === 'High') return s;
  if (typeof s === 'string') {
    const c = s.charAt(0).toUpperCase() + s.slice(1).toLowerCase();
    if (c === 'Low' || c === 'Medium' || c === 'High') return c;
  }
  return riskLevel(it.safety_index);
}

/** What stands where a level would: "no data", or "no data since HH:MM" (in the browser's
 *  zone, via time) for a stale answer with a timestamp. */
export function noDataLabel(it: IndexItem | undefined, time: (ms: number) => string): string {
  if (it && it.stale === true && it.timestamp) {
    const t = Date.parse(it.timestamp);
    if (Number.isFinite(t)) return `no data since ${time(t)}`;
  }
  return 'no data';
}

export function riskColour(level: RiskLevel | null): string {
  return level ? RISK_COLOURS[level] : NO_DATA_COLOUR;
}

/** Marker radius in pixels: area grows with volume, 4 px for none up to 14 px for the busiest. */
export function markerRadius(volume: number | null | undefined, maxVolume: number): number {
  const v = volume && volume > 0 ? volume : 0;
  if (maxVolume <= 0) return 4;
  return 4 + 10 * Math.sqrt(Math.min(v, maxVolume) / maxVolume);
}
