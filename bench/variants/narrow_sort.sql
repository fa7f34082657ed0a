-- Variant of geo.resolution.LINES_SQL, measured and not kept (see README, "Resolution"): the nearest road per piece
-- is chosen on narrow rows (ids and distance only) and its attributes joined back from the candidates afterwards.
-- Same rows as the product; the join back becomes a nested loop over the CTE (estimated at 1 row): about 3 times
-- slower.
WITH input AS (
    SELECT u.feature, u.part, ST_GeomFromWKB(u.wkb, :srid) AS geom
    FROM unnest(CAST(:features AS int[]), CAST(:parts AS int[]), CAST(:wkbs AS bytea[])) AS u(feature, part, wkb)
),
segs AS MATERIALIZED (
    SELECT i.feature, i.part, d.path[1] AS seq, (d.path[1] - 1) / :chunk_n AS chunk,
           (d.path[1] - 1) / :gchunk_n AS gchunk, d.geom AS seg, ST_Centroid(d.geom) AS mid,
           ST_Expand(ST_Centroid(d.geom), :tol) AS midbox
    FROM input i, LATERAL ST_DumpSegments(ST_Segmentize(i.geom, :step)) AS d
),
chunks AS MATERIALIZED (
    SELECT feature, part, chunk, ST_Expand(ST_Extent(seg)::geometry, :tol) AS box
    FROM segs GROUP BY feature, part, chunk
),
gchunks AS MATERIALIZED (
    SELECT feature, part, gchunk, ST_Collect(seg) AS g FROM segs GROUP BY feature, part, gchunk
),
road_cand AS MATERIALIZED (
    SELECT c.feature, c.part, c.chunk, r.*
    FROM chunks c CROSS JOIN LATERAL (
        SELECT r.id, r.geom, r.is_path, r.ref, r.name, r.highway, r.road_class, r.class_source, r.class_ref,
               r.is_private FROM road_segments r
        WHERE r.tenant_key = :tenant AND r.geom && ST_SetSRID(c.box, :srid)
    ) r
),
gem_cand AS MATERIALIZED (
    SELECT c.feature, c.part, c.gchunk, a.ags, a.geom
    FROM gchunks c CROSS JOIN LATERAL (
        SELECT a.ags, a.geom FROM admin_areas a
        WHERE a.tenant_key = :tenant AND a.level = 'gemeinde' AND ST_DWithin(a.geom, c.g, :gap)
    ) a
),
gem_hit AS MATERIALIZED (
    SELECT gc.ags, p.feature, p.part, p.seq, p.dist
    FROM gem_cand gc CROSS JOIN LATERAL (
        SELECT s.feature, s.part, s.seq,
               CASE WHEN ST_Intersects(gc.geom, s.mid) THEN 0
                    WHEN ST_DWithin(gc.geom, s.mid, :gap) THEN ST_Distance(gc.geom, s.mid) END AS dist
        FROM segs s WHERE s.feature = gc.feature AND s.part = gc.part AND s.gchunk = gc.gchunk
    ) p
),
seg_best AS (
    SELECT DISTINCT ON (feature, part, seq) feature, part, seq, chunk, road_id
    FROM (
        SELECT s.feature, s.part, s.seq, s.chunk, rc.id AS road_id,
               ST_Distance(rc.geom, s.mid) AS dist, rc.is_path
        FROM segs s JOIN road_cand rc USING (feature, part, chunk)
        WHERE rc.geom && s.midbox
    ) d
    WHERE dist <= :tol
    ORDER BY feature, part, seq, dist + CASE WHEN is_path THEN :penalty ELSE 0 END, road_id
),
seg_road AS (
    SELECT b.feature, b.part, b.seq, b.road_id, rc.ref, rc.name, rc.highway, rc.road_class, rc.class_source,
           rc.class_ref, rc.is_private
    FROM seg_best b JOIN road_cand rc ON rc.feature = b.feature AND rc.part = b.part AND rc.chunk = b.chunk
                                      AND rc.id = b.road_id
),
seg_gem AS (
    SELECT DISTINCT ON (feature, part, seq) feature, part, seq, ags
    FROM gem_hit WHERE dist <= :gap
    ORDER BY feature, part, seq, dist, ags
),
m AS (
    SELECT s.feature, s.part, s.seq, s.seg, sg.ags, r.road_id, r.ref, r.name, r.highway, r.road_class,
           r.class_source, COALESCE(r.class_ref, r.ref) AS road_ref, r.is_private,
           CASE WHEN r.road_class IN ('bund', 'land', 'kreis') THEN EXISTS (
               SELECT 1 FROM ortsdurchfahrten o
               WHERE o.tenant_key = :tenant
                 AND ST_DWithin(o.geom, s.mid, CASE WHEN o.is_line THEN :tol ELSE 0 END)
                 AND (o.road_ref IS NULL OR o.road_ref = COALESCE(r.class_ref, r.ref)
                      OR o.road_ref = ANY(string_to_array(replace(r.ref, '; ', ';'), ';')))
           ) END AS od
    FROM segs s
    LEFT JOIN seg_gem sg USING (feature, part, seq)
    LEFT JOIN seg_road r USING (feature, part, seq)  -- the road's attributes came with the candidates
),
k AS (
    SELECT m.*, concat_ws('|', ags, road_class, road_ref, name, is_private, od, road_id IS NULL) AS key FROM m
),
runs AS (
    SELECT k.*, seq - row_number() OVER (PARTITION BY feature, part, key ORDER BY seq) AS grp FROM k
)
SELECT feature, part, min(seq) AS first_seq, ags, road_class, road_ref, name, min(ref) AS ref,
       min(class_source) AS class_source, min(highway) AS highway, is_private, od, (road_id IS NULL) AS unmatched,
       sum(ST_Length(seg)) AS length_m,
       ST_AsGeoJSON(ST_Transform(ST_MakeLine(seg ORDER BY seq), :out_srid), :digits) AS geometry
FROM runs
GROUP BY feature, part, key, grp, ags, road_class, road_ref, name, is_private, od, (road_id IS NULL)
ORDER BY feature, part, first_seq
