package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/concord-p2p/concord"
)

// Keystroke latency between two peers on loopback, at the HTTP/SSE layer
// and with the browser in the loop:
//
//	go test ./examples/editor -run '^$' -bench Keystroke -benchtime 300x
//
// Each keystroke is sent once the one before arrived, so the figures are
// latencies, not queueing.

// benchPair is two connected peers (default gossip timings) serving the
// editor, with the text created on both.
func benchPair(b *testing.B) (srvA, srvB string, dB *concord.Doc) {
	b.Helper()
	slow := func(c *concord.Config) { c.FastGossip = false }
	a, sa, _ := editorPeer(b, slow)
	p, sb, _ := editorPeer(b, slow)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := p.Connect(ctx, a.Addrs()[0]); err != nil {
		b.Fatal(err)
	}
	dA, _ := a.Doc(ctx, "editor")
	dB, _ = p.Doc(ctx, "editor")
	if err := dA.Splice(ctx, []string{"text"}, 0, 0, "."); err != nil {
		b.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for textOf(dB) != "." {
		if time.Now().After(deadline) {
			b.Fatal("the text never reached peer B")
		}
		time.Sleep(10 * time.Millisecond)
	}
	return sa.URL, sb.URL, dB
}

// changeEvents reads the change events of a document's event stream.
func changeEvents(b *testing.B, url string) <-chan changeEvent {
	b.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	out := make(chan changeEvent, 1024)
	done := make(chan struct{})
	b.Cleanup(func() { cancel(); resp.Body.Close(); <-done })
	go func() {
		defer close(done)
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 16<<20)
		for sc.Scan() {
			line, ok := strings.CutPrefix(sc.Text(), "data: ")
			if !ok {
				continue
			}
			var ev changeEvent
			if json.Unmarshal([]byte(line), &ev) == nil {
				select {
				case out <- ev:
				default: // the benchmark reads them all; never blocks the stream
				}
			}
		}
	}()
	return out
}

type changeEvent struct {
	N       uint64 `json:"n"`
	Patches []struct {
		Text string `json:"text"`
	} `json:"patches"`
}

// postSplice POSTs one splice at index of ["text"] on the view after change
// base, and returns the number of the change holding it.
func postSplice(url string, base uint64, index int, text string) (uint64, error) {
	body, _ := json.Marshal([]map[string]any{{"op": "splice", "path": []string{"text"}, "index": index, "text": text, "base": base}})
	resp, err := http.Post(url+"/v1/docs/editor/ops", "application/json", bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var v struct {
		N uint64 `json:"n"`
	}
	if resp.StatusCode != 200 || json.Unmarshal(raw, &v) != nil {
		return 0, fmt.Errorf("POST ops: %d %s", resp.StatusCode, raw)
	}
	return v.N, nil
}

// reportLatencies reports the p50, p99 and max of ds in ms.
func reportLatencies(b *testing.B, ds []time.Duration) {
	slices.Sort(ds)
	q := func(p float64) float64 { return float64(ds[int(p*float64(len(ds)-1))]) / 1e6 }
	b.ReportMetric(q(0.5), "p50_ms")
	b.ReportMetric(q(0.99), "p99_ms")
	b.ReportMetric(q(1), "max_ms")
}

// A splice POSTed on peer A (with its base, as the page sends it) until
// its change event arrives on peer B's event stream.
func BenchmarkKeystrokeHTTP(b *testing.B) {
	srvA, srvB, _ := benchPair(b)
	events := changeEvents(b, srvB+"/v1/docs/editor/events")
	var resp struct {
		N uint64 `json:"n"`
	}
	r, err := http.Get(srvA + "/v1/docs/editor")
	if err != nil {
		b.Fatal(err)
	}
	_ = json.NewDecoder(r.Body).Decode(&resp)
	r.Body.Close()
	base := resp.N
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		key := string(rune(0x4e00 + i%20000))
		t0 := time.Now()
		n, err := postSplice(srvA, base, i+1, key)
		if err != nil {
			b.Fatal(err)
		}
		base = n
		timeout := time.After(10 * time.Second)
	wait:
		for {
			select {
			case ev := <-events:
				for _, p := range ev.Patches {
					if p.Text == key {
						break wait
					}
				}
			case <-timeout:
				b.Fatalf("keystroke %d never reached peer B", i)
			}
		}
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	reportLatencies(b, lat)
}

// A key event in page A (its beforeinput) until page B's textarea shows
// the character: the page's diff and POST, the peers' gossip, B's event
// stream and B's page applying the patch. Both times are the pages'
// Date.now() (one machine, one clock).
func BenchmarkKeystrokeBrowser(b *testing.B) {
	// One browser per page, as two users would have (tabs of one site can
	// share a renderer's main thread).
	br, brB := startBrowser(b), startBrowser(b)
	srvA, srvB, _ := benchPair(b)
	pageA, pageB := br.openEditor(srvA+"/"), brB.openEditor(srvB+"/")
	brB.waitText(pageB, ".", 20*time.Second, "page B")
	br.Eval(pageA, `(() => { window.typedAt = {};
		document.getElementById("text").addEventListener("beforeinput", (e) => { typedAt[e.data] = Date.now(); }, true);
		return true })()`)
	brB.Eval(pageB, `(() => { window.seenAt = {};
		const orig = HTMLTextAreaElement.prototype.setRangeText;
		HTMLTextAreaElement.prototype.setRangeText = function (...args) {
			const r = orig.apply(this, args), now = Date.now();
			for (const c of Array.from(String(args[0]))) if (!(c in seenAt)) seenAt[c] = now;
			return r;
		};
		return true })()`)
	if err := setCaret(pageA, 1); err != nil {
		b.Fatal(err)
	}
	keys := make([]string, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		key := string(rune(0x4e00 + i%20000))
		keys = append(keys, key)
		if _, err := chromedp.Run(pageA, chromedp.KeyEvent(key)); err != nil {
			b.Fatal(err)
		}
		brB.WaitEval(pageB, `seenAt[`+jsString(key)+`] !== undefined`, 10*time.Second, "keystroke "+key+" on page B")
		br.WaitEval(pageA, `editor.client.settled()`, 10*time.Second, "page A to see its keystroke's change")
	}
	b.StopTimer()
	var typed, seen map[string]int64
	br.EvalInto(pageA, `typedAt`, &typed)
	brB.EvalInto(pageB, `seenAt`, &seen)
	lat := make([]time.Duration, 0, len(keys))
	for _, k := range keys {
		lat = append(lat, time.Duration(seen[k]-typed[k])*time.Millisecond)
	}
	reportLatencies(b, lat)
}
