package main

import (
	"bytes"
	"encoding/json"
	"regexp"
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

// --json prints the bench contract of DESIGN.md: one object per scenario
// on its own line, metric names in snake_case ending in their unit.
func TestBenchJSON(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"bench", "--scenario", "catchup", "--json"}, nil, &out, &errb); code != exitOK {
		t.Fatalf("catchup --json: exit %d: %s", code, errb.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 1 {
		t.Fatalf("%d lines, want one object:\n%s", len(lines), out.String())
	}
	var got struct {
		Scenario string             `json:"scenario"`
		Params   map[string]any     `json:"params"`
		Metrics  map[string]float64 `json:"metrics"`
	}
	if err := json.Unmarshal([]byte(lines[0]), &got); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, lines[0])
	}
	if got.Scenario != "catchup" || got.Params["peers"] != float64(2) || got.Metrics["round_trips"] < 1 || got.Metrics["sync_initiator_to_responder_bytes"] <= 0 {
		t.Fatalf("unexpected object: %+v", got)
	}
	name := regexp.MustCompile(`^[a-z][a-z0-9_]*$`)
	for k := range got.Metrics {
		if !name.MatchString(k) {
			t.Errorf("metric name %q is not snake_case", k)
		}
	}
}

// The scale scenarios run small from the command line and report the
// metrics their targets name.
func TestBenchScaleScenarios(t *testing.T) {
	for _, c := range []struct {
		args []string
		keys []string
	}{
		{[]string{"--scenario", "scale", "--peers", "6", "--writes", "30"}, []string{"converged_after_last_write_s", "peak_rss_mib", "goroutines_per_peer"}},
		{[]string{"--scenario", "docs", "--docs", "20"}, []string{"goroutines_per_doc", "heap_per_doc_bytes", "converged_s"}},
	} {
		var out, errb bytes.Buffer
		if code := run(append([]string{"bench", "--json"}, c.args...), nil, &out, &errb); code != exitOK {
			t.Fatalf("%v: exit %d: %s", c.args, code, errb.String())
		}
		var got struct {
			Scenario string             `json:"scenario"`
			Params   map[string]any     `json:"params"`
			Metrics  map[string]float64 `json:"metrics"`
		}
		if err := json.Unmarshal(bytes.TrimSpace(out.Bytes()), &got); err != nil {
			t.Fatalf("%v: not one JSON object: %v\n%s", c.args, err, out.String())
		}
		for _, k := range c.keys {
			if _, ok := got.Metrics[k]; !ok {
				t.Errorf("%v: no metric %q in %v", c.args, k, got.Metrics)
			}
		}
		if got.Scenario != c.args[1] {
			t.Errorf("scenario %q", got.Scenario)
		}
	}
}

// The presence scenario reports its latencies and the bytes of one update.
func TestBenchPresence(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"bench", "--scenario", "presence", "--json"}, nil, &out, &errb); code != exitOK {
		t.Fatalf("presence --json: exit %d: %s", code, errb.String())
	}
	var got struct {
		Scenario string             `json:"scenario"`
		Metrics  map[string]float64 `json:"metrics"`
	}
	if err := json.Unmarshal(bytes.TrimSpace(out.Bytes()), &got); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out.String())
	}
	m := got.Metrics
	if got.Scenario != "presence" || m["deliveries"] != 400 || m["p50_ms"] <= 0 || m["p99_ms"] < m["p50_ms"] || m["update_bytes"] < 150 || m["update_bytes"] > 1024 {
		t.Fatalf("unexpected object: %s", out.String())
	}
}
