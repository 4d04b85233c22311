package main

import (
	"io"
	"strings"
	"testing"
	"time"
)

func TestRunRefusesRemoteTargets(t *testing.T) {
	var stderr strings.Builder
	code := run([]string{"-url", "http://10.1.2.3:8080", "-admin-key", "k", "-quiet"}, io.Discard, &stderr)
	if code != exitUsage || !strings.Contains(stderr.String(), "not a loopback address") {
		t.Errorf("exit %d, stderr %q", code, stderr.String())
	}
}

func TestRunFailsSetupWithoutServer(t *testing.T) {
	var stderr strings.Builder
	// Port 1 on loopback: nothing listens there.
	code := run([]string{"-url", "http://127.0.0.1:1", "-admin-key", "k", "-quiet", "-request-timeout", "2s"}, io.Discard, &stderr)
	if code != exitFailed || !strings.Contains(stderr.String(), "create concert") {
		t.Errorf("exit %d, stderr %q", code, stderr.String())
	}
}

func TestParseFlags(t *testing.T) {
	o, err := parseFlags([]string{"-admin-key", "k", "-duration", "5s"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.timeout != 5*time.Second+5*time.Minute || o.users != 1000 || o.dates != 100 || o.seats != 50 || o.fans != 10000 {
		t.Errorf("defaults: %+v", o)
	}
	for _, args := range [][]string{
		{"-scenario", "holds"},                   // no admin key
		{"-admin-key", "k", "-scenario", "nope"}, // bad scenario
		{"-admin-key", "k", "-users", "0"},       // no users
		{"-admin-key", "k", "-rate", "-5"},       // negative rate
		{"-admin-key", "k", "-duration", "0s"},   // no duration
		{"-admin-key", "k", "extra"},             // stray argument
	} {
		if _, err := parseFlags(args, io.Discard); err == nil {
			t.Errorf("parseFlags(%q) accepted", args)
		}
	}
}
