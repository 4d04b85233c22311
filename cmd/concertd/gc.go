package main

import "runtime/debug"

// defaultGCPercent is the collector's target when the operator did not set
// GOGC: collect when the heap has grown 200 % over the live heap (Go's
// default is 100 %). An on-sale's live heap is mostly long-lived actors (a
// wallet per fan), which every cycle marks again, so fewer cycles pay off:
// in a 100,000-fan sold-out on the 2-core VM (README, Performance) 200 gave
// 10 % more durable holds/s and 14 % less server CPU per sold seat than 100,
// for a heap of up to about 3× the live heap instead of 2×. GOGC (and
// GOMEMLIMIT) keep their meaning when set.
const defaultGCPercent = 200

// tuneGC applies defaultGCPercent unless GOGC is set in env, and reports
// whether it did.
func tuneGC(lookupEnv func(string) (string, bool)) bool {
	if _, set := lookupEnv("GOGC"); set {
		return false
	}
	debug.SetGCPercent(defaultGCPercent)
	return true
}
