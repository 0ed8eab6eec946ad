// History chart (uPlot): safety index on the left axis (0–100, dashed lines at 60 and 75),
// traffic volume on a second axis on the right; nulls are gaps, never bridged.
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import type { Columns } from './series';
import { HIGH_THRESHOLD, MEDIUM_THRESHOLD, RISK_COLOURS } from './risk';

function thresholdLines(u: uPlot): void {
  const ctx = u.ctx;
  const { left, width } = u.bbox;
  ctx.save();
  ctx.setLineDash([6 * devicePixelRatio, 4 * devicePixelRatio]);
  ctx.lineWidth = 1.5 * devicePixelRatio;
  for (const [v, colour] of [
    [MEDIUM_THRESHOLD, RISK_COLOURS.Medium],
    [HIGH_THRESHOLD, RISK_COLOURS.High],
  ] as const) {
    const y = Math.round(u.valToPos(v, 'si', true));
    ctx.strokeStyle = colour;
    ctx.beginPath();
    ctx.moveTo(left, y);
    ctx.lineTo(left + width, y);
    ctx.stroke();
  }
  ctx.restore();
}

export interface ChartOptions {
  width: number;
  height: number;
  compact?: boolean;
  title?: string;
}

export function historyChart(el: HTMLElement, cols: Columns, o: ChartOptions): uPlot {
  const compact = !!o.compact;
  const series: uPlot.Series[] = [
    {},
    {
      label: 'Safety index',
      scale: 'si',
      stroke: '#c0392b',
      width: compact ? 1.25 : 1.75,
      spanGaps: false,
      points: { show: cols.t.length < 60 },
      value: (_u, v) => (v === null || v === undefined ? '—' : v.toFixed(1)),
    },
  ];
  const axes: uPlot.Axis[] = [
    { stroke: '#34495e', grid: { stroke: '#eef1f4' }, size: compact ? 28 : 40 },
    { scale: 'si', stroke: '#c0392b', grid: { stroke: '#eef1f4' }, size: compact ? 38 : 44, label: compact ? undefined : 'Safety index' },
  ];
  if (!compact) {
    series.push({
      label: 'Traffic volume',
      scale: 'vol',
      stroke: '#2e86c1',
      fill: 'rgba(46,134,193,0.12)',
      width: 1,
      spanGaps: false,
      points: { show: false },
      value: (_u, v) => (v === null || v === undefined ? '—' : String(Math.round(v))),
    });
    axes.push({ scale: 'vol', side: 1, stroke: '#2e86c1', grid: { show: false }, size: 52, label: 'Traffic volume' });
  }
  const data: uPlot.AlignedData = compact ? [cols.t, cols.index] : [cols.t, cols.index, cols.volume];
  return new uPlot(
    {
      width: o.width,
      height: o.height,
      title: o.title,
      series,
      axes,
      legend: { show: !compact },
      cursor: { drag: { x: !compact, y: false } },
      scales: {
        x: { time: true },
        si: { range: [0, 100] },
        vol: { range: (_u, _min, max) => [0, Math.max(1, (max ?? 1) * 1.1)] },
      },
      hooks: { drawAxes: [thresholdLines] },
    },
    data,
    el,
  );
}
