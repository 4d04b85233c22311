package main

import (
	"runtime/debug"
	"testing"
)

func TestTuneGCLeavesAnOperatorsGOGC(t *testing.T) {
	before := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetGCPercent(before) })

	set := func(string) (string, bool) { return "50", true }
	if tuneGC(set) {
		t.Fatal("tuneGC overrode GOGC set by the operator")
	}
	if got := debug.SetGCPercent(100); got != 100 {
		t.Fatalf("GC percent %d after tuneGC with GOGC set, want it untouched (100)", got)
	}

	unset := func(string) (string, bool) { return "", false }
	if !tuneGC(unset) {
		t.Fatal("tuneGC did not apply its default without GOGC")
	}
	if got := debug.SetGCPercent(100); got != defaultGCPercent {
		t.Fatalf("GC percent %d, want %d", got, defaultGCPercent)
	}
}
