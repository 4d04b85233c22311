package actors

// Admission bounds how many actors sharing it may have a write queued or
// running in the journal at once. Each actor holds at most one slot (it has
// at most one write in flight), so sizing it at or below the journal's queue
// capacity means a write that was admitted is never refused by the journal;
// a command that cannot be admitted is refused before it changes anything,
// and the actor keeps serving. Safe for concurrent use.
type Admission struct{ slots chan struct{} }

// NewAdmission returns an admission of n slots (n < 1 is taken as 1).
func NewAdmission(n int) *Admission {
	return &Admission{slots: make(chan struct{}, max(n, 1))}
}

// InUse is the number of slots taken.
func (a *Admission) InUse() int { return len(a.slots) }

func (a *Admission) tryAcquire() bool {
	select {
	case a.slots <- struct{}{}:
		return true
	default:
		return false
	}
}

func (a *Admission) release() { <-a.slots }
