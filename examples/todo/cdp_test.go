package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// chromiumPath is Debian's chromium; CHROMIUM overrides it.
func chromiumPath() string {
	if p := os.Getenv("CHROMIUM"); p != "" {
		return p
	}
	return "/usr/bin/chromium"
}

// browser is a headless Chromium driven over the Chrome DevTools Protocol
// (one browser websocket, flat sessions per page). Calls are synchronous
// and not safe for concurrent use.
type browser struct {
	t      *testing.T
	cmd    *exec.Cmd
	ws     *websocket.Conn
	nextID int
	logMu  sync.Mutex
	log    []string // chromium's stderr, for failure messages
	logged chan struct{}
}

var devtoolsRE = regexp.MustCompile(`DevTools listening on (ws://\S+)`)

// startBrowser runs headless Chromium and connects to its DevTools socket.
func startBrowser(t *testing.T) *browser {
	t.Helper()
	bin := chromiumPath()
	if _, err := os.Stat(bin); err != nil {
		t.Skipf("headless Chromium not found at %s (apt-get install chromium, or set CHROMIUM): %v", bin, err)
	}
	b := &browser{t: t, logged: make(chan struct{})}
	b.cmd = exec.Command(bin, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-dev-shm-usage", "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0",
		"--user-data-dir="+t.TempDir(), "about:blank")
	stderr, err := b.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := b.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	wsURL := make(chan string, 1)
	go func() { // owned: ends when chromium exits and closes stderr
		defer close(b.logged)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			b.logMu.Lock()
			b.log = append(b.log, line)
			b.logMu.Unlock()
			if m := devtoolsRE.FindStringSubmatch(line); m != nil {
				select {
				case wsURL <- m[1]:
				default:
				}
			}
		}
		_, _ = io.Copy(io.Discard, stderr)
	}()
	t.Cleanup(b.close)
	select {
	case u := <-wsURL:
		b.ws, _, err = websocket.DefaultDialer.Dial(u, nil)
		if err != nil {
			t.Fatalf("dial devtools %s: %v", u, err)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("chromium printed no DevTools URL in 30s:\n%s", b.stderr())
	}
	return b
}

func (b *browser) stderr() string {
	b.logMu.Lock()
	defer b.logMu.Unlock()
	return fmt.Sprint(b.log)
}

func (b *browser) close() {
	if b.ws != nil {
		_ = b.ws.SetWriteDeadline(time.Now().Add(2 * time.Second))
		_ = b.ws.WriteJSON(map[string]any{"id": 1 << 30, "method": "Browser.close"})
		_ = b.ws.Close()
	}
	done := make(chan struct{})
	go func() { _ = b.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = b.cmd.Process.Kill()
		<-done
	}
	<-b.logged
}

// call sends one CDP command (to a page when session is set) and returns
// its result, skipping events.
func (b *browser) call(session, method string, params any, result any) {
	b.t.Helper()
	b.nextID++
	id := b.nextID
	msg := map[string]any{"id": id, "method": method, "params": params}
	if session != "" {
		msg["sessionId"] = session
	}
	_ = b.ws.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if err := b.ws.WriteJSON(msg); err != nil {
		b.t.Fatalf("cdp %s: %v", method, err)
	}
	_ = b.ws.SetReadDeadline(time.Now().Add(20 * time.Second))
	for {
		var resp struct {
			ID     int             `json:"id"`
			Result json.RawMessage `json:"result"`
			Error  *struct {
				Message string `json:"message"`
			} `json:"error"`
		}
		if err := b.ws.ReadJSON(&resp); err != nil {
			b.t.Fatalf("cdp %s: %v", method, err)
		}
		if resp.ID != id {
			continue // an event, or an older reply
		}
		if resp.Error != nil {
			b.t.Fatalf("cdp %s: %s", method, resp.Error.Message)
		}
		if result != nil {
			if err := json.Unmarshal(resp.Result, result); err != nil {
				b.t.Fatalf("cdp %s result: %v", method, err)
			}
		}
		return
	}
}

// open creates a page (tab) at url and returns its session.
func (b *browser) open(url string) string {
	b.t.Helper()
	var target struct{ TargetID string }
	b.call("", "Target.createTarget", map[string]any{"url": url}, &target)
	var att struct{ SessionID string }
	b.call("", "Target.attachToTarget", map[string]any{"targetId": target.TargetID, "flatten": true}, &att)
	return att.SessionID
}

// eval evaluates a JavaScript expression in a page and returns its value
// as JSON.
func (b *browser) eval(session, expr string) json.RawMessage {
	b.t.Helper()
	var r struct {
		Result struct {
			Value json.RawMessage `json:"value"`
		} `json:"result"`
		ExceptionDetails *struct {
			Text      string `json:"text"`
			Exception *struct {
				Description string `json:"description"`
			} `json:"exception"`
		} `json:"exceptionDetails"`
	}
	b.call(session, "Runtime.evaluate", map[string]any{"expression": expr, "returnByValue": true, "awaitPromise": true}, &r)
	if e := r.ExceptionDetails; e != nil {
		msg := e.Text
		if e.Exception != nil {
			msg = e.Exception.Description
		}
		b.t.Fatalf("eval %q: %s", expr, msg)
	}
	return r.Result.Value
}

// waitEval polls expr until it evaluates to true.
func (b *browser) waitEval(session, expr string, d time.Duration, what string) {
	b.t.Helper()
	deadline := time.Now().Add(d)
	for string(b.eval(session, expr)) != "true" {
		if time.Now().After(deadline) {
			b.t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(25 * time.Millisecond)
	}
}
