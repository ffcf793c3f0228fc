-- A multi-resolution summary of each run's loss curve, so that a downsampled read touches only the
-- rows it returns. Level L cuts a split's steps into buckets of 2^L consecutive steps (bucket =
-- step >> L) and keeps, per bucket, its lowest point, its highest point, its last point and how
-- many points it holds. Level 31 is one bucket per split (steps are non-negative int4), so it
-- holds the split's point count and last step.
--
-- It is a pure function of run_metrics: refresh_metric_buckets recomputes every bucket above the
-- steps it is given, level 1 from run_metrics and each level above from the two buckets below.
-- The projector calls it in the transaction that writes the points, so the summary commits with
-- them; a replaced point (a resumed attempt re-reporting a step) recomputes its buckets like a
-- new one, and a rebuild gives the same rows as incremental folding, whatever the batches were.

CREATE TABLE run_metric_buckets (
    run_id    text NOT NULL,
    split     text NOT NULL,
    level     smallint NOT NULL,
    bucket    integer NOT NULL,
    points    integer NOT NULL,
    low_step  integer NOT NULL,
    low_loss  double precision NOT NULL,
    high_step integer NOT NULL,
    high_loss double precision NOT NULL,
    last_step integer NOT NULL,
    last_loss double precision NOT NULL,
    PRIMARY KEY (run_id, split, level, bucket)
);

CREATE FUNCTION refresh_metric_buckets(p_run text, p_split text, p_steps integer[]) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    children integer[] := ARRAY(SELECT DISTINCT step FROM unnest(p_steps) AS step);
BEGIN
    FOR lvl IN 1..31 LOOP
        -- every child of the buckets to recompute, not only the touched ones: a bucket is
        -- recomputed whole from both its children
        children := ARRAY(SELECT DISTINCT (child >> 1) * 2 + side
                          FROM unnest(children) AS child, (VALUES (0), (1)) AS sides (side));
        INSERT INTO run_metric_buckets AS b
            (run_id, split, level, bucket, points, low_step, low_loss, high_step, high_loss, last_step, last_loss)
        SELECT p_run, p_split, lvl, c.child >> 1, sum(c.points),
               (array_agg(c.low_step ORDER BY c.low_loss, c.low_step))[1], min(c.low_loss),
               (array_agg(c.high_step ORDER BY c.high_loss DESC, c.high_step))[1], max(c.high_loss),
               max(c.last_step), (array_agg(c.last_loss ORDER BY c.last_step DESC))[1]
        FROM (
            SELECT m.step AS child, 1 AS points, m.step AS low_step, m.loss AS low_loss,
                   m.step AS high_step, m.loss AS high_loss, m.step AS last_step, m.loss AS last_loss
            FROM run_metrics m
            WHERE lvl = 1 AND m.run_id = p_run AND m.split = p_split AND m.step = ANY (children)
            UNION ALL
            SELECT k.bucket, k.points, k.low_step, k.low_loss, k.high_step, k.high_loss, k.last_step, k.last_loss
            FROM run_metric_buckets k
            WHERE lvl > 1 AND k.run_id = p_run AND k.split = p_split AND k.level = lvl - 1
              AND k.bucket = ANY (children)
        ) c
        GROUP BY c.child >> 1
        ON CONFLICT (run_id, split, level, bucket) DO UPDATE SET
            points = EXCLUDED.points, low_step = EXCLUDED.low_step, low_loss = EXCLUDED.low_loss,
            high_step = EXCLUDED.high_step, high_loss = EXCLUDED.high_loss,
            last_step = EXCLUDED.last_step, last_loss = EXCLUDED.last_loss;
        children := ARRAY(SELECT DISTINCT child >> 1 FROM unnest(children) AS child);
    END LOOP;
END
$$;

SELECT refresh_metric_buckets(run_id, split, array_agg(step)) FROM run_metrics GROUP BY run_id, split;
