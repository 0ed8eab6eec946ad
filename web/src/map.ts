// The map: Leaflet on a canvas renderer (1,000 circle markers stay smooth), no tiles by
// default — a plain background, a graticule, a scale and lane geometry where the API has
// it; TSI_TILE_URL (from the server's config) adds a tile layer.
import L from 'leaflet';
import 'leaflet/dist/leaflet.css';
import type { IndexItem } from './types';
import { itemRisk, markerRadius, noDataLabel, riskColour } from './risk';
import { LANE_MIN_ZOOM, type Lane, laneBbox, medianSpacing, niceStep } from './lanes';

export type Mode = 'none' | 'point' | 'route' | 'polygon';

export interface MapCallbacks {
  onSelect(id: number): void;
  onDrawChange(): void;
}

export class TsiMap {
  readonly map: L.Map;
  private renderer: L.Canvas;
  private markers = new Map<number, L.CircleMarker>();
  private items = new Map<number, IndexItem>();
  private markerLayer = L.layerGroup();
  private highlightLayer = L.layerGroup();
  private selectLayer = L.layerGroup();
  private laneLayer = L.layerGroup();
  private drawLayer = L.layerGroup();
  private graticule = L.layerGroup();
  private highlighted: Set<number> | null = null;
  private selected: number | null = null;
  private fitted = false;
  mode: Mode = 'none';
  drawPoints: L.LatLng[] = [];
  radius = 1000;

  constructor(el: HTMLElement, private cb: MapCallbacks) {
    this.renderer = L.canvas({ padding: 0.3, tolerance: 3 });
    this.map = L.map(el, {
      preferCanvas: true,
      renderer: this.renderer,
      zoomControl: true,
      attributionControl: true,
      worldCopyJump: false,
      minZoom: 2,
      maxZoom: 20,
    }).setView([37.2, -80.4], 12);
    this.map.attributionControl.setPrefix(false);
    L.control.scale({ metric: true, imperial: false, position: 'topright' }).addTo(this.map);
    this.graticule.addTo(this.map);
    this.laneLayer.addTo(this.map);
    this.markerLayer.addTo(this.map);
    this.highlightLayer.addTo(this.map);
    this.selectLayer.addTo(this.map);
    this.drawLayer.addTo(this.map);
    this.map.on('moveend zoomend', () => this.drawGraticule());
    this.map.on('moveend', () => this.updateLanes());
    this.map.on('zoomend', () => this.rescale());
    this.map.on('click', (e: L.LeafletMouseEvent) => this.onMapClick(e));
    this.drawGraticule();
  }

  addTiles(url: string, attribution?: string): void {
    L.tileLayer(url, { maxZoom: 20, attribution: attribution ?? '' }).addTo(this.map);
    this.map.getContainer().classList.add('with-tiles');
  }

  /** Adds, updates and removes markers to match items; keeps the view after the first fit.
   *  On the first call the view is fitted before any marker exists and the markers are
   *  added to their group while it is off the map, so 1,000 markers cost one draw. */
  setItems(items: IndexItem[]): void {
    const maxVol = items.reduce((m, it) => Math.max(m, it.traffic_volume ?? 0), 0);
    const valid = items.filter((it) => Number.isFinite(it.latitude) && Number.isFinite(it.longitude));
    const first = !this.fitted && valid.length > 0;
    if (first) {
      const b = L.latLngBounds(valid.map((it) => [it.latitude, it.longitude] as [number, number]));
      this.map.fitBounds(b, { padding: [24, 24], maxZoom: 16, animate: false });
      this.fitted = true;
      this.map.removeLayer(this.markerLayer);
    }
    this.maxVol = maxVol;
    if (first) {
      this.spacing0 = medianSpacing(valid.map((it) => this.map.project([it.latitude, it.longitude], 0)));
      this.scale = this.scaleAt(this.map.getZoom());
    }
    const seen = new Set<number>();
    for (const it of valid) {
      seen.add(it.intersection_id);
      this.items.set(it.intersection_id, it);
      const colour = riskColour(itemRisk(it));
      const r = Math.max(2, markerRadius(it.traffic_volume, maxVol) * this.scale);
      let m = this.markers.get(it.intersection_id);
      if (!m) {
        m = L.circleMarker([it.latitude, it.longitude], {
          renderer: this.renderer,
          radius: r,
          color: '#1b2631',
          weight: 1,
          fillColor: colour,
          fillOpacity: 0.9,
          bubblingMouseEvents: false,
        });
        const id = it.intersection_id;
        m.on('click', (e: L.LeafletMouseEvent) => {
          if (this.mode !== 'none') this.onMapClick(e);
          else this.cb.onSelect(id);
        });
        m.on('mouseover', () => this.showTip(id));
        m.on('mouseout', () => this.map.closeTooltip(this.tip));
        this.markers.set(id, m);
        this.markerLayer.addLayer(m);
      } else {
        const ll = m.getLatLng();
        if (ll.lat !== it.latitude || ll.lng !== it.longitude) m.setLatLng([it.latitude, it.longitude]);
        if (m.getRadius() !== r) m.setRadius(r);
        if (m.options.fillColor !== colour) m.setStyle({ fillColor: colour });
      }
    }
    for (const [id, m] of this.markers) {
      if (!seen.has(id)) {
        this.markerLayer.removeLayer(m);
        this.markers.delete(id);
        this.items.delete(id);
      }
    }
    if (first) this.markerLayer.addTo(this.map);
    this.applyHighlight();
    this.drawSelection();
  }

  private tip = L.tooltip({ direction: 'top', offset: [0, -8] });
  private maxVol = 0;
  private spacing0 = 0; // median nearest-neighbour distance, pixels at zoom 0
  private scale = 1;

  /** Dense views shrink every marker alike (sizes stay comparable) so they do not merge. */
  private scaleAt(zoom: number): number {
    if (!(this.spacing0 > 0)) return 1;
    const px = this.spacing0 * Math.pow(2, zoom);
    return Math.min(1, Math.max(0.35, px / 2 / 14));
  }

  private rescale(): void {
    const s = this.scaleAt(this.map.getZoom());
    if (Math.abs(s - this.scale) < 0.01) return;
    this.scale = s;
    for (const [id, m] of this.markers) m.setRadius(Math.max(2, markerRadius(this.items.get(id)?.traffic_volume, this.maxVol) * s));
    this.applyHighlight();
    this.drawSelection();
  }

  private showTip(id: number): void {
    const m = this.markers.get(id);
    if (!m) return;
    this.tip.setLatLng(m.getLatLng()).setContent(this.tooltip(id));
    this.tip.options.offset = [0, -m.getRadius() - 2];
    this.map.openTooltip(this.tip);
  }

  fitAll(): void {
    const b = L.latLngBounds([]);
    for (const m of this.markers.values()) b.extend(m.getLatLng());
    if (b.isValid()) this.map.fitBounds(b, { padding: [24, 24], maxZoom: 16, animate: false });
  }

  private tooltip(id: number): string {
    const it = this.items.get(id);
    if (!it) return '';
    const si = it.safety_index;
    const lvl = itemRisk(it) ?? noDataLabel(it, (ms) => new Date(ms).toLocaleTimeString('en-GB', { hour12: false }));
    const esc = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
    return `<b>${esc(it.intersection_name ?? '#' + id)}</b><br>Index ${si === null || si === undefined ? '—' : si.toFixed(1)} · ${lvl}` +
      `<br>Volume ${it.traffic_volume ?? '—'}`;
  }

  markerIds(): number[] {
    return [...this.markers.keys()];
  }

  /** A marker's fill colour (for tests), null when there is no such marker. */
  markerColour(id: number): string | null {
    const m = this.markers.get(id);
    return m ? ((m.options.fillColor as string | undefined) ?? null) : null;
  }

  /** Container pixel of a marker (for tests and the benchmark). */
  markerPoint(id: number): { x: number; y: number } | null {
    const m = this.markers.get(id);
    if (!m) return null;
    const p = this.map.latLngToContainerPoint(m.getLatLng());
    return { x: p.x, y: p.y };
  }

  /** Highlights the given ids (spatial results) and dims the rest; null clears. */
  highlight(ids: number[] | null): void {
    this.highlighted = ids ? new Set(ids) : null;
    this.applyHighlight();
  }

  highlightedIds(): number[] {
    return this.highlighted ? [...this.highlighted].filter((id) => this.markers.has(id)) : [];
  }

  private dimmed = false;

  private applyHighlight(): void {
    this.highlightLayer.clearLayers();
    if (!this.highlighted && !this.dimmed) return; // nothing to undo: skip 1,000 setStyle calls
    this.dimmed = !!this.highlighted;
    for (const [id, m] of this.markers) {
      const on = !this.highlighted || this.highlighted.has(id);
      m.setStyle({ fillOpacity: on ? 0.9 : 0.18, opacity: on ? 1 : 0.25 });
      if (this.highlighted && on) {
        L.circleMarker(m.getLatLng(), {
          renderer: this.renderer,
          radius: m.getRadius() + 4,
          color: '#2c3e50',
          weight: 2.5,
          fill: false,
          interactive: false,
        }).addTo(this.highlightLayer);
      }
    }
  }

  select(id: number | null, pan = false): void {
    this.selected = id;
    this.drawSelection();
    if (pan && id !== null) {
      const m = this.markers.get(id);
      if (m && !this.map.getBounds().pad(-0.1).contains(m.getLatLng())) this.map.panTo(m.getLatLng(), { animate: false });
    }
  }

  private drawSelection(): void {
    this.selectLayer.clearLayers();
    const m = this.selected !== null ? this.markers.get(this.selected) : undefined;
    if (m) {
      L.circleMarker(m.getLatLng(), {
        renderer: this.renderer,
        radius: m.getRadius() + 6,
        color: '#1f6feb',
        weight: 3,
        fill: false,
        interactive: false,
      }).addTo(this.selectLayer);
    }
  }

  // ---- lane geometry ----------------------------------------------------------------
  /** Fetches the lanes of a bbox (min_lon,min_lat,max_lon,max_lat); set by the app. */
  lanesLoader: ((bbox: string, signal: AbortSignal) => Promise<Lane[]>) | null = null;
  private laneCtl: AbortController | null = null;
  private laneBox: L.LatLngBounds | null = null; // what the drawn lanes cover
  private lanes: { lane: Lane; line: L.Polyline }[] = [];

  /** From zoom LANE_MIN_ZOOM on, draws the lanes of the view and half a view around it
   *  (fetched again only when the view leaves that area); below it, none (nothing is
   *  fetched, so 1,000 markers cost what they did). */
  private updateLanes(): void {
    if (!this.lanesLoader) return;
    if (this.map.getZoom() < LANE_MIN_ZOOM) {
      this.laneCtl?.abort();
      this.laneCtl = null;
      this.laneBox = null;
      this.drawLanes([]);
      return;
    }
    const view = this.map.getBounds();
    if (this.laneBox && this.laneBox.contains(view)) return;
    const bb = laneBbox(view.getSouth(), view.getWest(), view.getNorth(), view.getEast());
    this.laneCtl?.abort();
    const ctl = (this.laneCtl = new AbortController());
    this.lanesLoader(bb.join(','), ctl.signal).then(
      (lanes) => {
        if (ctl.signal.aborted || this.map.getZoom() < LANE_MIN_ZOOM) return;
        this.laneCtl = null;
        this.laneBox = L.latLngBounds([bb[1], bb[0]], [bb[3], bb[2]]);
        this.drawLanes(lanes);
      },
      () => {
        /* no lanes (aborted, or the API cannot now): the markers alone; retried on the next move */
      },
    );
  }

  private drawLanes(lanes: Lane[]): void {
    this.laneLayer.clearLayers();
    this.lanes = lanes.map((lane) => {
      const walk = lane.type === 'crosswalk';
      const line = L.polyline(lane.coords, {
        renderer: this.renderer,
        color: walk ? '#34495e' : lane.type === 'bike' ? '#16a085' : '#8c9499',
        weight: walk ? 2 : 1.5,
        opacity: 0.9,
        dashArray: walk ? '4 3' : undefined,
        interactive: false,
      }).addTo(this.laneLayer);
      return { lane, line };
    });
    this.map.getContainer().dataset.lanes = String(this.lanes.length);
  }

  /** The lanes drawn now (for tests): visible = some part lies inside the view. */
  lanesDrawn(): { intersection_id: number; lane_id: number | null; type: string; dashed: boolean; visible: boolean }[] {
    const view = this.map.getBounds();
    return this.lanes.map(({ lane, line }) => ({
      intersection_id: lane.intersection_id,
      lane_id: lane.lane_id,
      type: lane.type,
      dashed: !!line.options.dashArray,
      visible: lane.coords.some((c) => view.contains(c)),
    }));
  }

  // ---- spatial drawing -----------------------------------------------------------
  setMode(mode: Mode): void {
    this.mode = mode;
    this.clearDrawing();
    this.map.getContainer().classList.toggle('drawing', mode !== 'none');
    if (mode === 'none') this.map.doubleClickZoom.enable();
    else this.map.doubleClickZoom.disable();
  }

  clearDrawing(): void {
    this.drawPoints = [];
    this.drawLayer.clearLayers();
    this.cb.onDrawChange();
  }

  setRadius(m: number): void {
    this.radius = m;
    this.redrawDrawing();
  }

  private onMapClick(e: L.LeafletMouseEvent): void {
    if (this.mode === 'none') return;
    if (this.mode === 'point') this.drawPoints = [e.latlng];
    else this.drawPoints.push(e.latlng);
    this.redrawDrawing();
    this.cb.onDrawChange();
  }

  /** Sets the drawing programmatically (e.g. from typed coordinates). */
  setDrawPoints(pts: { lat: number; lon: number }[]): void {
    this.drawPoints = pts.map((p) => L.latLng(p.lat, p.lon));
    this.redrawDrawing();
    this.cb.onDrawChange();
  }

  private redrawDrawing(): void {
    this.drawLayer.clearLayers();
    const style = { color: '#1f6feb', weight: 2, dashArray: '6 4', interactive: false };
    const pts = this.drawPoints;
    if (pts.length === 0) return;
    if (this.mode === 'point') {
      L.circle(pts[0], { ...style, radius: this.radius, fillOpacity: 0.06 }).addTo(this.drawLayer);
    } else if (this.mode === 'route' && pts.length > 1) {
      L.polyline(pts, { ...style, dashArray: undefined, weight: 3 }).addTo(this.drawLayer);
    } else if (this.mode === 'polygon' && pts.length > 2) {
      L.polygon(pts, { ...style, fillOpacity: 0.06 }).addTo(this.drawLayer);
    } else if (pts.length > 1) {
      L.polyline(pts, style).addTo(this.drawLayer);
    }
    for (const p of pts) L.circleMarker(p, { renderer: this.renderer, radius: 3, color: '#1f6feb', fillOpacity: 1, interactive: false }).addTo(this.drawLayer);
  }

  // ---- graticule -------------------------------------------------------------------
  private drawGraticule(): void {
    this.graticule.clearLayers();
    const b = this.map.getBounds();
    const span = Math.max(b.getNorth() - b.getSouth(), (b.getEast() - b.getWest()) / 2);
    const step = niceStep(span / 6);
    const style = { color: '#aab7c4', weight: 0.6, opacity: 0.7, interactive: false, renderer: this.renderer };
    const south = Math.max(-85, Math.floor(b.getSouth() / step) * step);
    const north = Math.min(85, Math.ceil(b.getNorth() / step) * step);
    const west = Math.floor(b.getWest() / step) * step;
    const east = Math.ceil(b.getEast() / step) * step;
    const digits = Math.max(0, -Math.floor(Math.log10(step)) + (step < 1 && String(step).includes('5') ? 1 : 0));
    let n = 0;
    for (let lat = south; lat <= north + 1e-9 && n < 200; lat += step, n++) {
      L.polyline([[lat, west], [lat, east]], style).addTo(this.graticule);
      L.marker([lat, b.getWest()], { interactive: false, icon: label(`${lat.toFixed(digits)}°`, 'lat') }).addTo(this.graticule);
    }
    for (let lon = west; lon <= east + 1e-9 && n < 400; lon += step, n++) {
      L.polyline([[south, lon], [north, lon]], style).addTo(this.graticule);
      L.marker([b.getSouth(), lon], { interactive: false, icon: label(`${lon.toFixed(digits)}°`, 'lon') }).addTo(this.graticule);
    }
  }
}

function label(text: string, kind: 'lat' | 'lon'): L.DivIcon {
  return L.divIcon({ className: `graticule-label graticule-${kind}`, html: text, iconSize: null as unknown as L.PointExpression });
}
