-- The list endpoints read keyset pages in each list's order, the id breaking ties: with these a
-- page is an index range from where the previous one ended, however long the list.
CREATE INDEX runs_requested ON runs (requested_at DESC, id);
-- Also serves what runs_experiment served (its leading column), and an experiment's runs in order.
CREATE INDEX runs_experiment_requested ON runs (experiment_id, requested_at DESC, id);
DROP INDEX runs_experiment;
CREATE INDEX experiments_created ON experiments (created_at, id);
CREATE INDEX adapters_created ON adapters (created_at, id);
CREATE INDEX comparisons_created ON comparisons (created_at DESC, id);
CREATE INDEX clips_dataset_created ON clips (dataset_id, created_at, id) WHERE removed_at IS NULL;
CREATE INDEX preference_pairs_dataset_created ON preference_pairs (dataset_id, created_at, id) WHERE removed_at IS NULL;
