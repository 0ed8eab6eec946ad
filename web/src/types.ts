// Shapes of the tsi API (domain.md §6 plus the additive fields of issue 13).
// Optional fields are ones an older server may not send; the dashboard copes without them.

export type RiskLevel = 'Low' | 'Medium' | 'High';

export interface IndexItem {
  intersection_id: number;
  intersection_name: string;
  safety_index: number | null;
  traffic_volume: number | null;
  latitude: number;
  longitude: number;
  timestamp?: string | null;
  risk_level?: string | null;
  combined_index?: number | null;
  combined_index_eb?: number | null;
  vru_index?: number | null;
  vru_index_eb?: number | null;
  vehicle_index?: number | null;
  vehicle_index_eb?: number | null;
  vru_count?: number | null;
  distance_m?: number | null;
  /** v2: seconds since the current row's minute, and whether that is beyond the server's
   *  --stale-seconds (no fresh data: greyed, as no data) */
  age_seconds?: number | null;
  stale?: boolean | null;
}

export interface HistoryPoint {
  timestamp: string;
  safety_index: number | null;
  vru_index?: number | null;
  vehicle_index?: number | null;
  traffic_volume?: number | null;
  hour_of_day?: number;
  day_of_week?: number;
}

export interface History {
  intersection_id: number;
  intersection_name: string;
  data_points: HistoryPoint[];
  start_date: string;
  end_date: string;
  total_points: number;
  aggregation: string;
}

export interface Stats {
  intersection_id: number;
  intersection_name: string;
  period_start: string;
  period_end: string;
  avg_safety_index: number | null;
  min_safety_index: number | null;
  max_safety_index: number | null;
  std_safety_index: number | null;
  total_traffic_volume: number | null;
  avg_traffic_volume: number | null;
  high_risk_intervals: number | null;
  high_risk_percentage: number | null;
}

/** One row of /compare or /ranking: an intersection and its statistics for the period. */
export type StatRow = Record<string, unknown> & { intersection_id: number; intersection_name?: string };

export type DataSource = 'postgres' | 'parquet' | 'unknown';

export interface Fetched<T> {
  data: T;
  source: DataSource;
  /** X-Data-Source-Since: since when the server answers from that source (ms), if said */
  since?: number;
}
