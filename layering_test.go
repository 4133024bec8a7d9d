package concord

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// The layering of README's layout: arrows point down only. Each package's
// non-test files may import only the Concord packages listed for it.
func TestLayering(t *testing.T) {
	const mod = "github.com/concord-p2p/concord/"
	allowed := map[string][]string{
		"crdt":              {"internal/decmode"},
		"wire":              {"crdt", "internal/decmode"},
		"store":             {"crdt"},
		"engine":            {"crdt", "wire", "store"}, // store: its record types only (see the engine's Storage)
		"net":               {"crdt", "wire", "internal/workpool"},
		"internal/sim":      {"crdt", "wire", "store", "engine", "internal/faultds"},
		"internal/decmode":  {},
		"internal/b4trace":  {},
		"internal/presence": {"wire"},
		"internal/workpool": {},
	}
	for dir, ok := range allowed {
		files, err := filepath.Glob(filepath.Join(dir, "*.go"))
		if err != nil || len(files) == 0 {
			t.Fatalf("%s: no files (%v)", dir, err)
		}
		for _, name := range files {
			if strings.HasSuffix(name, "_test.go") {
				continue
			}
			f, err := parser.ParseFile(token.NewFileSet(), name, nil, parser.ImportsOnly)
			if err != nil {
				t.Fatal(err)
			}
			for _, imp := range f.Imports {
				path, _ := strconv.Unquote(imp.Path.Value)
				rel, ours := strings.CutPrefix(path, mod)
				if !ours {
					continue
				}
				permitted := false
				for _, a := range ok {
					permitted = permitted || rel == a
				}
				if !permitted {
					t.Errorf("%s imports %s: %s may import only %v", name, rel, dir, ok)
				}
			}
		}
	}
}
