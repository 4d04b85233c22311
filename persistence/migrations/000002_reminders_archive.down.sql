DROP FUNCTION IF EXISTS journal_pruned(text, bigint);
DROP TABLE IF EXISTS journal_archive;
DROP TABLE IF EXISTS journal_reminders;
