-- One durable wake-up per actor, written in the same statement as the
-- actor's events; a reminder service polls the due ones by due_at.
CREATE TABLE IF NOT EXISTS journal_reminders (
    actor_id text        PRIMARY KEY,
    due_at   timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS journal_reminders_due_at ON journal_reminders (due_at);

-- Records that left an actor's state with a snapshot (closed reservations,
-- old payments), written in the same transaction as that snapshot.
CREATE TABLE IF NOT EXISTS journal_archive (
    actor_id    text   NOT NULL,
    key         bigint NOT NULL,
    record_type text   NOT NULL,
    payload     bytea  NOT NULL,
    PRIMARY KEY (actor_id, key)
);

-- journal_pruned refuses an event row at or below the actor's snapshot
-- (its rows may have been pruned, so the primary key can no longer fence
-- it). It raises unique_violation, the error of a duplicate key, so the
-- journal fences the call the same way.
CREATE OR REPLACE FUNCTION journal_pruned(actor text, seq bigint) RETURNS bigint
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'journal row (%, %) is at or below the actor''s snapshot', actor, seq
        USING ERRCODE = 'unique_violation';
END
$$;
