package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// childEnv, when set, makes the test binary run the editor program with
// the JSON list of arguments it holds (see startChild): a real process the
// tests can kill.
const childEnv = "CONCORD_EDITOR_CHILD_ARGS"

func TestMain(m *testing.M) {
	if v := os.Getenv(childEnv); v != "" {
		var args []string
		if err := json.Unmarshal([]byte(v), &args); err != nil {
			fmt.Fprintln(os.Stderr, "editor child:", err)
			os.Exit(2)
		}
		if err := run(args); err != nil {
			fmt.Fprintln(os.Stderr, "editor:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	goleak.VerifyTestMain(m,
		goleak.IgnoreAnyFunction("github.com/ipfs/go-log/v2/writer.(*MirrorWriter).logRoutine"),
		goleak.IgnoreTopFunction("github.com/libp2p/go-libp2p/p2p/transport/quicreuse.(*reuse).gc"),
		goleak.IgnoreTopFunction("go.opencensus.io/stats/view.(*worker).start"),
	)
}

// child is the editor program running in a process of its own (this test
// binary, re-executed; see TestMain).
type child struct {
	cmd    *exec.Cmd
	url    string // the page
	listen string // a libp2p address, …/p2p/<id>
	done   chan struct{}
	mu     sync.Mutex
	out    strings.Builder
}

// startChild runs the editor with args (plus a data directory and
// loopback addresses) and waits until it is ready.
func startChild(t *testing.T, args ...string) *child {
	t.Helper()
	args = append([]string{"--data", t.TempDir(), "--http", "127.0.0.1:0", "--listen", "/ip4/127.0.0.1/tcp/0"}, args...)
	env, _ := json.Marshal(args)
	c := &child{cmd: exec.Command(os.Args[0], "-test.run=^$"), done: make(chan struct{})}
	c.cmd.Env = append(os.Environ(), childEnv+"="+string(env))
	c.cmd.Stderr = &lockedWriter{c: c}
	stdout, err := c.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan struct{})
	go func() {
		defer close(c.done)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line := sc.Text()
			c.mu.Lock()
			c.out.WriteString(line + "\n")
			switch {
			case strings.HasPrefix(line, "http "):
				c.url = strings.TrimPrefix(line, "http ")
			case strings.HasPrefix(line, "listen ") && c.listen == "":
				c.listen = strings.TrimPrefix(line, "listen ")
			case line == "ready":
				close(ready)
			}
			c.mu.Unlock()
		}
		_ = c.cmd.Wait()
	}()
	t.Cleanup(func() {
		c.kill()
		if t.Failed() {
			t.Logf("child output:\n%s", c.output())
		}
	})
	select {
	case <-ready:
	case <-c.done:
		t.Fatalf("the editor exited before it was ready:\n%s", c.output())
	case <-time.After(30 * time.Second):
		t.Fatalf("the editor was not ready in 30 s:\n%s", c.output())
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c
}

// kill kills the process (SIGKILL: no goodbye) and waits for it.
func (c *child) kill() {
	_ = c.cmd.Process.Kill()
	<-c.done
}

func (c *child) output() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.out.String()
}

// lockedWriter adds the child's standard error to its output.
type lockedWriter struct{ c *child }

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.c.mu.Lock()
	defer w.c.mu.Unlock()
	return w.c.out.Write(p)
}

// The program: a peer started with its flags (in a process of its own)
// serves the page, which edits the text at ["text"] of the document
// "editor" and reaches a peer it was bootstrapped to.
func TestProgramInChromium(t *testing.T) {
	br := startBrowser(t)
	a, _, _ := editorPeer(t)
	b := startChild(t, "--bootstrap", a.Addrs()[0])
	page := br.openEditor(b.url)
	br.typeText(page, 0, "from the program")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dA, _ := a.Doc(ctx, "editor")
	waitFor(t, 20*time.Second, "the page's text on the bootstrap peer", func() bool { return textOf(dA) == "from the program" })
}

// testSeed returns a random test's seed: def, or CONCORD_TEST_SEED's value
// when set (to explore other cases; a failure names its seed).
func testSeed(t *testing.T, def int64) int64 {
	t.Helper()
	if v := os.Getenv("CONCORD_TEST_SEED"); v != "" {
		s, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			t.Fatalf("CONCORD_TEST_SEED: %v", err)
		}
		def = s & 0x7fffffff
	}
	t.Logf("seed %d", def)
	return def
}
