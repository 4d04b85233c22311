package persistence

// The batch statements, exposed to the benchmarks of package
// persistence_test.
var (
	InsertSQL              = insertPlainSelect
	InsertPruningSQL       = insertPruningSelect
	InsertWithRemindersSQL = withReminders(insertPlainSelect)
)
