-- ClipRemoved / PreferencePairRemoved mark the rows rather than delete them: an add event folded
-- again after its removal (a duplicate stored after the dedup window) then finds the row and,
-- inserting with ON CONFLICT DO NOTHING, leaves it removed. Reads skip rows with removed_at set.
ALTER TABLE clips ADD COLUMN removed_at timestamptz;
ALTER TABLE preference_pairs ADD COLUMN removed_at timestamptz;
