package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// proc is one running "concord peer".
type proc struct {
	t      *testing.T
	cmd    *exec.Cmd
	lines  chan string
	stderr *syncBuffer
	waited chan struct{}
	err    error // of Wait, once waited is closed

	id     string
	listen []string
	url    string
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startPeerProc runs "concord peer args..." and waits for its "ready" line.
func startPeerProc(t *testing.T, args ...string) *proc {
	t.Helper()
	p := &proc{t: t, lines: make(chan string, 64), stderr: &syncBuffer{}, waited: make(chan struct{})}
	p.cmd = exec.Command(concordBin, append([]string{"peer"}, args...)...)
	p.cmd.Stderr = p.stderr
	p.cmd.Env = append(os.Environ(), "CONCORD_TEST_FAST_GOSSIP=1")
	out, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(p.lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			select {
			case p.lines <- sc.Text():
			default: // later lines nobody reads: keep the pipe flowing
			}
		}
	}()
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			_ = p.cmd.Process.Kill()
			p.wait()
		}
	})
	return p
}

// wait reaps the process (once).
func (p *proc) wait() {
	select {
	case <-p.waited:
	default:
		p.err = p.cmd.Wait()
		close(p.waited)
	}
}

// ready reads the startup lines: peer, listen..., http, ready.
func (p *proc) ready(lines <-chan string) {
	p.t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		select {
		case <-deadline:
			p.t.Fatalf("no ready line after 30s; stderr:\n%s", p.stderr)
		case l, ok := <-lines:
			if !ok {
				p.t.Fatalf("peer exited before ready; stderr:\n%s", p.stderr)
			}
			kind, rest, _ := strings.Cut(l, " ")
			switch kind {
			case "peer":
				p.id = rest
			case "listen":
				if !strings.HasSuffix(rest, "/p2p/"+p.id) {
					p.t.Fatalf("listen line %q does not end in /p2p/%s", l, p.id)
				}
				p.listen = append(p.listen, rest)
			case "http":
				p.url = rest
			case "ready":
				if p.id == "" || len(p.listen) == 0 {
					p.t.Fatalf("ready before peer/listen lines")
				}
				return
			default:
				p.t.Fatalf("unexpected startup line %q", l)
			}
		}
	}
}

// stop sends SIGTERM and returns the exit code.
func (p *proc) stop() int {
	p.t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		p.t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { p.wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		_ = p.cmd.Process.Kill()
		<-done
		p.t.Fatalf("peer did not exit 20s after SIGTERM; stderr:\n%s", p.stderr)
	}
	return p.cmd.ProcessState.ExitCode()
}

func (p *proc) get(path string) map[string]any {
	p.t.Helper()
	resp, err := http.Get(p.url + path)
	if err != nil {
		p.t.Fatal(err)
	}
	defer resp.Body.Close()
	var v map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil || resp.StatusCode != 200 {
		p.t.Fatalf("GET %s: %d %v", path, resp.StatusCode, err)
	}
	return v
}

func (p *proc) post(path, body string) {
	p.t.Helper()
	resp, err := http.Post(p.url+path, "application/json", strings.NewReader(body))
	if err != nil {
		p.t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		p.t.Fatalf("POST %s: %d %s", path, resp.StatusCode, b)
	}
}

func waitUntil(t *testing.T, d time.Duration, what func() string) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		msg := what()
		if msg == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v: %s", d, msg)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func docState(p *proc) string {
	v := p.get("/v1/docs/notes")
	b, _ := json.Marshal([]any{v["value"], v["version"]})
	return string(b)
}

func TestProcessPeersConvergeAndRestart(t *testing.T) {
	root := t.TempDir()
	dirA, dirB, dirC := filepath.Join(root, "a"), filepath.Join(root, "b"), filepath.Join(root, "c")
	a := startPeerProc(t, "--data", dirA, "--listen", "/ip4/127.0.0.1/tcp/0", "--http", "127.0.0.1:0", "--doc", "notes")
	a.ready(a.lines)
	if !strings.HasPrefix(a.url, "http://127.0.0.1:") || strings.HasSuffix(a.url, ":0") {
		t.Fatalf("http line shows %q, want the bound URL", a.url)
	}
	var peers []*proc
	for _, dir := range []string{dirB, dirC} {
		p := startPeerProc(t, "--data", dir, "--listen", "/ip4/127.0.0.1/tcp/0", "--http", "127.0.0.1:0", "--doc", "notes", "--bootstrap", a.listen[0])
		p.ready(p.lines)
		peers = append(peers, p)
	}
	b, c := peers[0], peers[1]
	all := []*proc{a, b, c}

	a.post("/v1/docs/notes/ops", `[{"op":"set","path":["title"],"value":"groceries"}]`)
	b.post("/v1/docs/notes/ops", `[{"op":"inc","path":["count"],"by":2}]`)
	c.post("/v1/docs/notes/ops", `[{"op":"add","path":["items"],"value":"milk"},{"op":"set","path":["meta","by"],"value":"c"}]`)
	want := `{"count":2,"items":["milk"],"meta":{"by":"c"},"title":"groceries"}`
	waitUntil(t, 30*time.Second, func() string {
		s := docState(a)
		for _, p := range all {
			v := p.get("/v1/docs/notes")
			got, _ := json.Marshal(v["value"])
			if string(got) != want || docState(p) != s {
				return fmt.Sprintf("peer %s shows %s, want %s (and the same version as A: %s)", p.id, docState(p), want, s)
			}
		}
		return ""
	})
	waitUntil(t, 30*time.Second, func() string {
		st := a.get("/v1/status")
		if n := len(st["peers"].([]any)); n < 2 {
			return fmt.Sprintf("A lists %d peers", n)
		}
		return ""
	})
	final := docState(a)
	// Let the outboxes drain so the restart does not depend on it.
	for _, p := range all {
		if code := p.stop(); code != 0 {
			t.Fatalf("peer exited %d after SIGTERM; stderr:\n%s", code, p.stderr)
		}
	}
	// Same directory, same identity, same state (the doc opens on first GET).
	a2 := startPeerProc(t, "--data", dirA, "--listen", "/ip4/127.0.0.1/tcp/0", "--http", "127.0.0.1:0")
	a2.ready(a2.lines)
	if a2.id != a.id {
		t.Fatalf("restarted peer has ID %s, was %s", a2.id, a.id)
	}
	if got := docState(a2); got != final {
		t.Fatalf("after restart: %s, want %s", got, final)
	}
	if code := a2.stop(); code != 0 {
		t.Fatalf("restarted peer exited %d; stderr:\n%s", code, a2.stderr)
	}
	out, err := exec.Command(concordBin, "id", "--data", dirA).Output()
	if err != nil || strings.TrimSpace(string(out)) != a.id {
		t.Fatalf("concord id: %q %v, want %s", out, err, a.id)
	}
}

func TestProcessID(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "new")
	var ids []string
	for range 2 {
		out, err := exec.Command(concordBin, "id", "--data", dir).Output()
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, strings.TrimSpace(string(out)))
	}
	if ids[0] != ids[1] || !strings.HasPrefix(ids[0], "12D3Koo") {
		t.Fatalf("ids %q", ids)
	}
}

func TestProcessUsageErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	badPSK := write("bad.key", "/key/swarm/psk/1.0.0/\n/base16/\nnothex\n")
	badWriters := write("writers", "# team\nnot-a-peer-id\n")
	emptyToken := write("empty.token", " \n")
	twoLineToken := write("two.token", "abc\ndef\n")
	data := filepath.Join(dir, "data")
	cases := []struct {
		args []string
		msg  string
	}{
		{nil, "missing command"},
		{[]string{"frob"}, "unknown command"},
		{[]string{"peer", "--nope"}, "not defined"},
		{[]string{"peer", "--data", data, "stray"}, "unexpected argument"},
		{[]string{"peer", "--data", data, "--http", "8080"}, "--http"},
		{[]string{"peer", "--data", data, "--listen", "tcp:1234"}, "--listen"},
		{[]string{"peer", "--data", data, "--bootstrap", "/ip4/127.0.0.1/tcp/1"}, "--bootstrap"},
		{[]string{"peer", "--data", data, "--psk", filepath.Join(dir, "missing")}, "--psk"},
		{[]string{"peer", "--data", data, "--psk", badPSK}, "--psk"},
		{[]string{"peer", "--data", data, "--writers", badWriters}, "writers:2"},
		{[]string{"peer", "--data", data, "--http", "127.0.0.1:0", "--http-token", filepath.Join(dir, "missing")}, "--http-token"},
		{[]string{"peer", "--data", data, "--http", "127.0.0.1:0", "--http-token", emptyToken}, "empty"},
		{[]string{"peer", "--data", data, "--http", "127.0.0.1:0", "--http-token", twoLineToken}, "one line"},
		{[]string{"peer", "--data", data, "--http", "127.0.0.1:0", "--http-origin", "null"}, "--http-origin"},
		{[]string{"peer", "--data", data, "--http", "127.0.0.1:0", "--http-origin", "localhost:3000"}, "--http-origin"},
		{[]string{"peer", "--data", data, "--http", "127.0.0.1:0", "--http-origin", "http://x/path"}, "--http-origin"},
		{[]string{"peer", "--data", data, "--http-origin", "http://localhost:3000"}, "need --http"},
		{[]string{"id", "--data"}, "needs an argument"},
	}
	for _, c := range cases {
		t.Run(strings.Join(c.args, "_"), func(t *testing.T) {
			cmd := exec.Command(concordBin, c.args...)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			err := cmd.Run()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 2 {
				t.Fatalf("exit %v, want 2; stderr:\n%s", err, stderr.String())
			}
			if !strings.Contains(stderr.String(), c.msg) || !strings.Contains(stderr.String(), "Usage:") {
				t.Fatalf("stderr lacks %q and the usage:\n%s", c.msg, stderr.String())
			}
		})
	}
	for _, args := range [][]string{{"help"}, {"peer", "--help"}, {"id", "-h"}} {
		out, err := exec.Command(concordBin, args...).Output()
		if err != nil || !strings.Contains(string(out), "Usage:") {
			t.Fatalf("%v: %v %s", args, err, out)
		}
	}
}
