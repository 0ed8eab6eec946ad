-- 021_realtime_covering_key: the realtime table's primary key carries the values the API
-- reads (issue 13, history of minutes).
--
-- A minute history reads ~2,900 rows of one intersection through the primary key; each
-- row then cost a heap fetch for its indices and volume (the heap row is ~150 bytes for
-- the ~40 the answer needs). With those columns INCLUDEd in the key's index, the scan is
-- index-only wherever the visibility map says so (every closed day after autovacuum, the
-- older pages of today): measured from a client on one connection, 1.9-2.7 ms of backend
-- time a query against 3.0-3.3 ms with the plain key. The key itself is unchanged
-- (intersection_id, "timestamp"): uniqueness, ON CONFLICT and the row order are as before,
-- and the table still has three indexes (a separate covering index would have been a
-- fourth to maintain on every insert).
ALTER TABLE safety_indices_realtime DROP CONSTRAINT safety_indices_realtime_pkey;
ALTER TABLE safety_indices_realtime
    ADD CONSTRAINT safety_indices_realtime_pkey PRIMARY KEY (intersection_id, "timestamp")
    INCLUDE (combined_index, combined_index_eb, vru_index, vru_index_eb, vehicle_index,
             vehicle_index_eb, traffic_volume);
