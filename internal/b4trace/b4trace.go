// Package b4trace reads the B4 editing trace: Martin Kleppmann's
// keystrokes writing the automerge paper (automerge-perf, CC BY 4.0), as
// copied by Joseph Gentle's editing-traces — 259,778 single-character
// edits ending in a 104,852-character text. The file is not part of the
// repository: it is read from ../shared/data beside the module root.
//
// The package owns only the reading of the trace (for benchmarks and
// tests); it imports the standard library alone.
package b4trace

import (
	"compress/gzip"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"
)

// File is the trace's file name in ../shared/data.
const File = "automerge-paper.json.gz"

// Patch is one edit: at Pos (in code points), delete Del, then insert Ins.
type Patch struct {
	Pos, Del int
	Ins      []rune
}

// Trace is the whole trace.
type Trace struct {
	Start, End string
	Patches    []Patch
}

var (
	once  sync.Once
	trace *Trace
	err   error
)

// Path returns where the trace is read from: ../shared/data next to the
// module root found from the working directory.
func Path() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(dir, "..", "shared", "data", File), nil
		}
		up := filepath.Dir(dir)
		if up == dir {
			return "", fmt.Errorf("b4trace: no go.mod above the working directory: %w", os.ErrNotExist)
		}
		dir = up
	}
}

// Load reads the trace once; later calls return the same one (callers must
// not modify it).
func Load() (*Trace, error) {
	once.Do(func() { trace, err = load() })
	return trace, err
}

func load() (*Trace, error) {
	p, err := Path()
	if err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return nil, fmt.Errorf("b4trace: %s: %w", p, err)
	}
	var raw struct {
		StartContent string `json:"startContent"`
		EndContent   string `json:"endContent"`
		Txns         []struct {
			Patches [][3]json.RawMessage `json:"patches"`
		} `json:"txns"`
	}
	if err := json.NewDecoder(zr).Decode(&raw); err != nil {
		return nil, fmt.Errorf("b4trace: %s: %w", p, err)
	}
	t := &Trace{Start: raw.StartContent, End: raw.EndContent}
	for i, tx := range raw.Txns {
		for _, p := range tx.Patches {
			var bp Patch
			var ins string
			if json.Unmarshal(p[0], &bp.Pos) != nil || json.Unmarshal(p[1], &bp.Del) != nil || json.Unmarshal(p[2], &ins) != nil {
				return nil, fmt.Errorf("b4trace: transaction %d: bad patch %s", i, p)
			}
			bp.Ins = []rune(ins)
			t.Patches = append(t.Patches, bp)
		}
	}
	return t, nil
}
