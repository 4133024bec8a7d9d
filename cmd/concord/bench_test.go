package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestBenchCommand(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"bench", "--scenario", "nope"}, nil, &out, &errb); code != exitUsage {
		t.Fatalf("unknown scenario: exit %d", code)
	}
	out.Reset()
	if code := run([]string{"bench", "--scenario", "catchup"}, nil, &out, &errb); code != exitOK {
		t.Fatalf("catchup: exit %d: %s", code, errb.String())
	}
	if !strings.Contains(out.String(), "round trips") || !strings.Contains(out.String(), "met") {
		t.Fatalf("unexpected output:\n%s", out.String())
	}
}
