package actors

// Admission bounds how many actors sharing it may have a piece of journal
// work under way at once; each actor holds at most one slot of it. As
// JournaledOptions.Admission it bounds writes queued or running: sized at or
// below the journal's queue capacity, a write that was admitted is never
// refused by the journal, and a command that cannot be admitted is refused
// before it changes anything. As JournaledOptions.SnapshotAdmission it
// bounds snapshots being captured, encoded and saved: sized at or below the
// journal's snapshot writers, a captured snapshot is never refused
// ErrSnapshotBusy. Safe for concurrent use.
type Admission struct{ slots chan struct{} }

// NewAdmission returns an admission of n slots (n < 1 is taken as 1).
func NewAdmission(n int) *Admission {
	return &Admission{slots: make(chan struct{}, max(n, 1))}
}

// InUse is the number of slots taken.
func (a *Admission) InUse() int { return len(a.slots) }

func (a *Admission) full() bool { return len(a.slots) == cap(a.slots) }

func (a *Admission) tryAcquire() bool {
	select {
	case a.slots <- struct{}{}:
		return true
	default:
		return false
	}
}

func (a *Admission) release() { <-a.slots }
