-- Every downsampled read of a run's metrics starts from the level-31 bucket of each split (its
-- point count and last step). Through the primary key (run_id, split, level, bucket) finding those
-- scanned all of the run's buckets, the splits not being known yet: here they are one entry each.
CREATE INDEX run_metric_buckets_whole ON run_metric_buckets (run_id) WHERE level = 31;
