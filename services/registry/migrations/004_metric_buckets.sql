-- A multi-resolution summary of each run's loss curve, so that a downsampled read touches only the
-- rows it returns. Level L cuts a split's steps into buckets of 2^L consecutive steps (bucket =
-- step >> L) and keeps, per bucket, its lowest point, its highest point, its last point and how
-- many points it holds. Level 31 is one bucket per split (steps are non-negative int4), so it
-- holds the split's point count and last step.
--
-- It is a pure function of run_metrics: refresh_metric_buckets recomputes every bucket over the
-- step range it is given, level 1 from run_metrics and each level above from the two buckets below.
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

CREATE FUNCTION refresh_metric_buckets(p_run text, p_split text, p_first integer, p_last integer)
RETURNS void LANGUAGE plpgsql AS $$
-- Recompute every bucket over steps p_first..p_last, at every level. Buckets are read and written
-- by key ranges (index range scans); a bucket is recomputed whole from both its children.
BEGIN
    INSERT INTO run_metric_buckets AS b
        (run_id, split, level, bucket, points, low_step, low_loss, high_step, high_loss, last_step, last_loss)
    SELECT p_run, p_split, 1, m.step >> 1, count(*),
           (array_agg(m.step ORDER BY m.loss, m.step))[1], min(m.loss),
           (array_agg(m.step ORDER BY m.loss DESC, m.step))[1], max(m.loss),
           max(m.step), (array_agg(m.loss ORDER BY m.step DESC))[1]
    FROM run_metrics m
    WHERE m.run_id = p_run AND m.split = p_split AND m.step BETWEEN (p_first >> 1) << 1 AND (p_last >> 1) * 2 + 1
    GROUP BY m.step >> 1
    ON CONFLICT (run_id, split, level, bucket) DO UPDATE SET
        points = EXCLUDED.points, low_step = EXCLUDED.low_step, low_loss = EXCLUDED.low_loss,
        high_step = EXCLUDED.high_step, high_loss = EXCLUDED.high_loss,
        last_step = EXCLUDED.last_step, last_loss = EXCLUDED.last_loss;
    FOR lvl IN 2..31 LOOP
        INSERT INTO run_metric_buckets AS b
            (run_id, split, level, bucket, points, low_step, low_loss, high_step, high_loss, last_step, last_loss)
        SELECT p_run, p_split, lvl, c.bucket >> 1, sum(c.points),
               (array_agg(c.low_step ORDER BY c.low_loss, c.low_step))[1], min(c.low_loss),
               (array_agg(c.high_step ORDER BY c.high_loss DESC, c.high_step))[1], max(c.high_loss),
               max(c.last_step), (array_agg(c.last_loss ORDER BY c.last_step DESC))[1]
        FROM run_metric_buckets c
        WHERE c.run_id = p_run AND c.split = p_split AND c.level = lvl - 1
          AND c.bucket BETWEEN (p_first >> lvl) << 1 AND (p_last >> lvl) * 2 + 1
        GROUP BY c.bucket >> 1
        ON CONFLICT (run_id, split, level, bucket) DO UPDATE SET
            points = EXCLUDED.points, low_step = EXCLUDED.low_step, low_loss = EXCLUDED.low_loss,
            high_step = EXCLUDED.high_step, high_loss = EXCLUDED.high_loss,
            last_step = EXCLUDED.last_step, last_loss = EXCLUDED.last_loss;
    END LOOP;
END
$$;

SELECT refresh_metric_buckets(run_id, split, min(step), max(step)) FROM run_metrics GROUP BY run_id, split;
