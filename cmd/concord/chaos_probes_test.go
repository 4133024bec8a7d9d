package main

// The chaos test's bad-input probes.

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

// A chaosProbe is a bad input sent to a live peer: want lists the answers
// that are right. body returns the request body and, for a probe that may
// be accepted, the key under ["probe"] and the value it must then show on
// every peer once healed.
type chaosProbe struct {
	name string
	want []int
	body func(n int) (body []byte, key string, value []byte)
}

// chaosProbes returns the probes, all of them unless CONCORD_CHAOS_PROBES
// names some (comma-separated), to replay one.
func chaosProbes(t *testing.T) []chaosProbe {
	all := allChaosProbes()
	only := os.Getenv("CONCORD_CHAOS_PROBES")
	if only == "" {
		return all
	}
	var out []chaosProbe
	for _, name := range strings.Split(only, ",") {
		i := slices.IndexFunc(all, func(p chaosProbe) bool { return p.name == name })
		if i < 0 {
			t.Fatalf("CONCORD_CHAOS_PROBES: no probe %q", name)
		}
		out = append(out, all[i])
	}
	return out
}

func allChaosProbes() []chaosProbe {
	nested := func(depth int) []byte {
		return []byte(strings.Repeat("[", depth) + "1" + strings.Repeat("]", depth))
	}
	one := func(op string) []byte { return []byte("[" + op + "]") }
	return []chaosProbe{
		{"utf8_set_element", []int{400}, func(int) ([]byte, string, []byte) {
			return one(`{"op":"add","path":["probe","set"],"value":"a` + "\xff\xfe" + `b"}`), "", nil
		}},
		{"utf8_path_key", []int{400}, func(int) ([]byte, string, []byte) {
			return one(`{"op":"set","path":["probe","k` + "\xc3\x28" + `"],"value":1}`), "", nil
		}},
		{"utf8_register_value", []int{400}, func(int) ([]byte, string, []byte) {
			return one(`{"op":"set","path":["probe","v"],"value":"a` + "\xed\xa0\x80" + `b"}`), "", nil
		}},
		{"body_5mib", []int{413}, func(int) ([]byte, string, []byte) {
			return one(`{"op":"set","path":["probe","big"],"value":"` + strings.Repeat("x", 5<<20) + `"}`), "", nil
		}},
		{"nesting_100k", []int{400}, func(int) ([]byte, string, []byte) {
			return one(`{"op":"set","path":["probe","deep"],"value":` + string(nested(100_000)) + `}`), "", nil
		}},
		{"nesting_5000", []int{200, 400}, func(n int) ([]byte, string, []byte) {
			key := fmt.Sprintf("deep%d", n)
			return one(`{"op":"set","path":["probe","` + key + `"],"value":` + string(nested(5000)) + `}`), key, nested(5000)
		}},
		{"path_1000_keys", []int{400}, func(int) ([]byte, string, []byte) {
			path, _ := json.Marshal(slices.Repeat([]string{"p"}, 1000))
			return one(`{"op":"set","path":` + string(path) + `,"value":1}`), "", nil
		}},
		{"million_ops", []int{413, 400}, func(int) ([]byte, string, []byte) {
			op := `{"op":"inc","path":["probe","n"],"by":1}`
			return []byte("[" + strings.TrimSuffix(strings.Repeat(op+",", 1_000_000), ",") + "]"), "", nil
		}},
	}
}

// probe sends one bad input to a live peer and checks the answer and that
// the peer is still up and serving.
func (c *chaos) probe(pr chaosProbe) {
	p := c.peers[c.rng.IntN(len(c.peers))]
	c.tagSeq++
	body, key, value := pr.body(c.tagSeq)
	code, msg, err := rawPost(p.url, "/v1/docs/"+chaosProbeDoc+"/ops", body)
	if err != nil {
		c.t.Errorf("probe %s on peer %d: no answer: %v", pr.name, p.idx, err)
	}
	if c.probes[pr.name] == nil {
		c.probes[pr.name] = map[int]int{}
	}
	c.probes[pr.name][code]++
	if !slices.Contains(pr.want, code) {
		c.t.Errorf("probe %s on peer %d: %d %.200s, want %v", pr.name, p.idx, code, msg, pr.want)
	}
	if code == 200 {
		c.accepted = append(c.accepted, pr.name)
		if key != "" {
			c.deep = append(c.deep, deepWrite{key, value})
		}
	}
	select {
	case <-p.p.waited:
		c.t.Fatalf("peer %d exited after probe %s; stderr:\n%s", p.idx, pr.name, p.p.stderr)
	default:
	}
	p.p.get("/v1/status") // fails the test unless 200
}

// rawPost sends a POST over its own connection and reads the answer while
// the body is still being written: a peer may answer (413) and close before
// it has read a large body, which an http.Client reports as a write error.
func rawPost(base, path string, body []byte) (int, string, error) {
	hostport := strings.TrimPrefix(base, "http://")
	conn, err := net.DialTimeout("tcp", hostport, 5*time.Second)
	if err != nil {
		return 0, "", err
	}
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	wrote := make(chan struct{})
	go func() {
		defer close(wrote)
		w := bufio.NewWriter(conn)
		fmt.Fprintf(w, "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n", path, hostport, len(body))
		_, _ = w.Write(body)
		_ = w.Flush()
	}()
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	var code int
	var msg []byte
	if err == nil {
		code = resp.StatusCode
		msg, _ = io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
	}
	conn.Close()
	<-wrote
	if err != nil {
		return 0, "", fmt.Errorf("read answer: %w", err)
	}
	return code, string(msg), nil
}
