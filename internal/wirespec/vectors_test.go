package wirespec

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/concord-p2p/concord/internal/specdoc"
)

var _ = flag.Bool("update", false, "rewrite testdata/ and the vector blocks of WIRE.md (see specdoc.Updating)")

// otherOwners are the id prefixes of WIRE.md blocks checked by the tests
// of other packages: sync frames and message IDs (net), log records and
// keys (store).
var otherOwners = []string{"frame-", "msgid-", "topic-", "store-"}

func vectors(t *testing.T) []Vector {
	t.Helper()
	vs, err := Vectors()
	if err != nil {
		t.Fatal(err)
	}
	return vs
}

// TestSpecVectors checks that every vector WIRE.md shows is the code's
// output for its inputs, in hex and in diagnostic notation, and that WIRE.md
// shows no vector nobody checks.
func TestSpecVectors(t *testing.T) {
	spec, err := specdoc.Load()
	if err != nil {
		t.Fatal(err)
	}
	vs := vectors(t)
	ours := map[string]bool{}
	for _, v := range vs {
		ours[v.ID] = true
		switch v.Kind {
		case kindText:
			if specdoc.Updating() {
				if err := spec.SetBody(specdoc.KindText, v.ID, string(v.Bytes)); err != nil {
					t.Fatal(err)
				}
				continue
			}
			got, err := spec.Text(v.ID)
			if err != nil {
				t.Error(err)
				continue
			}
			if got != string(v.Bytes) {
				t.Errorf("WIRE.md text %s is %q, the code gives %q", v.ID, got, v.Bytes)
			}
		case kindHex:
			var diag string
			if v.CBOR {
				if diag, err = specdoc.Diag(v.Bytes); err != nil {
					t.Fatalf("%s: %v", v.ID, err)
				}
			}
			if specdoc.Updating() {
				if err := spec.SetHex(v.ID, v.Bytes); err != nil {
					t.Fatal(err)
				}
				if v.CBOR {
					if err := spec.SetBody(specdoc.KindDiag, v.ID, diag); err != nil {
						t.Fatal(err)
					}
				}
				continue
			}
			got, err := spec.Hex(v.ID)
			if err != nil {
				t.Error(err)
				continue
			}
			if !bytes.Equal(got, v.Bytes) {
				t.Errorf("WIRE.md vector %s differs from the code:\n spec %x\n code %x", v.ID, got, v.Bytes)
			}
			if v.CBOR {
				if got, err := spec.Diag(v.ID); err != nil {
					t.Error(err)
				} else if got != diag {
					t.Errorf("WIRE.md diagnostic notation of %s differs:\n spec %s\n code %s", v.ID, got, diag)
				}
			}
			if err := v.Check(got); err != nil {
				t.Errorf("WIRE.md vector %s: %v", v.ID, err)
			}
		}
	}
	if specdoc.Updating() {
		if err := spec.Save(); err != nil {
			t.Fatal(err)
		}
		return
	}
	for _, kind := range []string{specdoc.KindHex, specdoc.KindDiag, specdoc.KindText} {
		for _, id := range spec.IDs(kind) {
			owned := ours[id]
			for _, p := range otherOwners {
				owned = owned || strings.HasPrefix(id, p)
			}
			if !owned {
				t.Errorf("WIRE.md has a %s block %q that no test checks", kind, id)
			}
			if kind == specdoc.KindDiag {
				if _, err := spec.Block(specdoc.KindHex, id); err != nil {
					t.Errorf("cbor-diag block %q has no hex block", id)
				}
			}
		}
	}
}

// TestSpecRecordedBytes checks the recorded bytes in testdata/: the code still
// encodes the inputs to them, and they still decode to the inputs.
func TestSpecRecordedBytes(t *testing.T) {
	for _, v := range vectors(t) {
		if v.Kind != kindHex {
			continue
		}
		t.Run(v.ID, func(t *testing.T) {
			ext := ".bin"
			if v.CBOR {
				ext = ".cbor"
			}
			path := filepath.Join("testdata", v.ID+ext)
			if specdoc.Updating() {
				if err := os.WriteFile(path, v.Bytes, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			rec, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update to record)", err)
			}
			if !bytes.Equal(v.Bytes, rec) {
				t.Errorf("the code no longer encodes the inputs to the recorded bytes:\n code     %x\n recorded %x", v.Bytes, rec)
			}
			if err := v.Check(rec); err != nil {
				t.Errorf("recorded bytes: %v", err)
			}
		})
	}
}

// TestSpecChecksDiscriminate makes sure no Check accepts another vector's
// bytes, so that passing checks mean something.
func TestSpecChecksDiscriminate(t *testing.T) {
	vs := vectors(t)
	for _, v := range vs {
		for _, w := range vs {
			if bytes.Equal(v.Bytes, w.Bytes) {
				continue
			}
			if err := v.Check(w.Bytes); err == nil {
				t.Errorf("the check of %s accepts the bytes of %s", v.ID, w.ID)
			}
		}
	}
}
