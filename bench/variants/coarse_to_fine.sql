-- Variant of geo.resolution.LINES_SQL, measured and not kept (see README, "Resolution"): coarse-to-fine matching.
-- Pieces are grouped by 5; a group whose candidate roads (within its box) all share class, number, name, highway and
-- privacy takes that road for every piece within the tolerance (one semi-join, no sort); the other groups match
-- piece by piece as the product does. Same rows as the product; on the Frankfurter Kreuz only about 1 group in 6
-- qualifies, and the planner's estimate of 1 row per CTE makes the extra joins nested loops (about 3.5 times slower).
WITH input AS (
    SELECT u.feature, u.part, ST_GeomFromWKB(u.wkb, :srid) AS geom
    FROM unnest(CAST(:features AS int[]), CAST(:parts AS int[]), CAST(:wkbs AS bytea[])) AS u(feature, part, wkb)
),
segs AS MATERIALIZED (
    SELECT i.feature, i.part, d.path[1] AS seq, (d.path[1] - 1) / :chunk_n AS chunk,
           (d.path[1] - 1) / :gchunk_n AS gchunk, (d.path[1] - 1) / :grp_n AS grp, d.geom AS seg, ST_Centroid(d.geom) AS mid,
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
grps AS MATERIALIZED (
    SELECT feature, part, grp, min(chunk) AS chunk, ST_SetSRID(ST_Expand(ST_Extent(mid)::geometry, :tol), :srid) AS box
    FROM segs GROUP BY feature, part, grp
),
grp_cand AS MATERIALIZED (
    SELECT g.feature, g.part, g.grp, rc.id, rc.geom, rc.is_path, rc.ref, rc.name, rc.highway, rc.road_class,
           rc.class_source, rc.class_ref, rc.is_private
    FROM grps g JOIN road_cand rc ON rc.feature = g.feature AND rc.part = g.part AND rc.chunk = g.chunk
    WHERE rc.geom && g.box
),
grp_kind AS MATERIALIZED (
    SELECT feature, part, grp,
           count(DISTINCT ROW(ref, name, highway, road_class, class_source, class_ref, is_private, is_path)::text) AS n,
           min(id) AS road_id, min(ref) AS ref, min(name) AS name, min(highway) AS highway,
           min(road_class) AS road_class, min(class_source) AS class_source, min(class_ref) AS class_ref,
           bool_and(is_private) AS is_private
    FROM grp_cand GROUP BY feature, part, grp
),
seg_road AS (
    SELECT s.feature, s.part, s.seq, k.road_id, k.ref, k.name, k.highway, k.road_class, k.class_source,
           k.class_ref, k.is_private
    FROM segs s JOIN grp_kind k USING (feature, part, grp)
    WHERE k.n = 1 AND EXISTS (
        SELECT 1 FROM grp_cand gc
        WHERE gc.feature = s.feature AND gc.part = s.part AND gc.grp = s.grp AND ST_DWithin(gc.geom, s.mid, :tol))
    UNION ALL
    (SELECT DISTINCT ON (feature, part, seq) feature, part, seq, road_id, ref, name, highway, road_class,
           class_source, class_ref, is_private
    FROM (
        SELECT s.feature, s.part, s.seq, gc.id AS road_id, gc.is_path, ST_Distance(gc.geom, s.mid) AS dist,
               gc.ref, gc.name, gc.highway, gc.road_class, gc.class_source, gc.class_ref, gc.is_private
        FROM segs s JOIN grp_kind k USING (feature, part, grp) JOIN grp_cand gc USING (feature, part, grp)
        WHERE k.n > 1 AND gc.geom && s.midbox
    ) d
    WHERE dist <= :tol
    ORDER BY feature, part, seq, dist + CASE WHEN is_path THEN :penalty ELSE 0 END, road_id)
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
