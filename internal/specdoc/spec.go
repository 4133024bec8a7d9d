package specdoc

import (
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// FileName is the name of the specification at the module root.
const FileName = "WIRE.md"

// UpdateEnv, set to 1, makes Updating report true: tests then rewrite the
// blocks of WIRE.md (and their recorded testdata) from what the code
// produces, instead of comparing. Run the packages one at a time (go test
// -p 1), since each rewrites WIRE.md.
const UpdateEnv = "CONCORD_WIRESPEC_UPDATE"

// Block kinds.
const (
	KindHex       = "hex"
	KindDiag      = "cbor-diag"
	KindText      = "text"
	KindConstants = "constants"
)

// ErrNoBlock is returned for an id WIRE.md has no block of.
var ErrNoBlock = errors.New("specdoc: no such block")

// Block is one marked fenced block.
type Block struct {
	Kind  string
	ID    string
	Attrs map[string]string
	Body  string
	Line  int // line of the opening fence, 1-based
	start int // offset of the body in the source
	end   int // offset just past the body
}

// Spec is a parsed WIRE.md.
type Spec struct {
	Path   string
	src    string
	Blocks []Block
}

// Updating reports whether tests should rewrite WIRE.md and testdata: the
// environment variable UpdateEnv is 1, or a test binary's -update flag is
// set.
func Updating() bool {
	if os.Getenv(UpdateEnv) == "1" {
		return true
	}
	if f := flag.Lookup("update"); f != nil {
		return f.Value.String() == "true"
	}
	return false
}

// Locate returns the path of WIRE.md: the directory holding go.mod, from
// the working directory up.
func Locate() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("specdoc: %w", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(dir, FileName), nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("specdoc: no go.mod above the working directory")
		}
		dir = parent
	}
}

// Load reads and parses WIRE.md.
func Load() (*Spec, error) {
	path, err := Locate()
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("specdoc: %w", err)
	}
	s, err := Parse(string(b))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	s.Path = path
	return s, nil
}

// Parse finds the marked blocks of src. A marked block opens with a line
// "```<kind> id=<id> [key=value...]" (constants blocks need no id) and
// closes with a line "```". Two blocks of one kind may not share an id.
func Parse(src string) (*Spec, error) {
	s := &Spec{src: src}
	seen := map[string]bool{}
	off, line := 0, 0
	inFence := false
	var cur *Block
	for off < len(src) {
		end := strings.IndexByte(src[off:], '\n')
		next := len(src)
		if end >= 0 {
			next = off + end + 1
		}
		text := strings.TrimRight(src[off:next], "\r\n")
		line++
		switch {
		case !inFence && strings.HasPrefix(text, "```"):
			inFence = true
			b, ok, err := parseInfo(strings.TrimPrefix(text, "```"))
			if err != nil {
				return nil, fmt.Errorf("line %d: %w", line, err)
			}
			if ok {
				b.Line, b.start = line, next
				key := b.Kind + " " + b.ID
				if b.Kind != KindConstants && seen[key] {
					return nil, fmt.Errorf("line %d: second %s block with id %q", line, b.Kind, b.ID)
				}
				seen[key] = true
				cur = &b
			}
		case inFence && strings.TrimSpace(text) == "```":
			inFence = false
			if cur != nil {
				cur.end = off
				cur.Body = src[cur.start:cur.end]
				s.Blocks = append(s.Blocks, *cur)
				cur = nil
			}
		}
		off = next
	}
	if inFence {
		return nil, fmt.Errorf("unclosed fenced block")
	}
	return s, nil
}

// parseInfo parses a fence's info string; ok is false for blocks that are
// not marked.
func parseInfo(info string) (Block, bool, error) {
	fields := strings.Fields(info)
	if len(fields) == 0 {
		return Block{}, false, nil
	}
	b := Block{Kind: fields[0], Attrs: map[string]string{}}
	switch b.Kind {
	case KindHex, KindDiag, KindText, KindConstants:
	default:
		return Block{}, false, nil
	}
	for _, f := range fields[1:] {
		k, v, ok := strings.Cut(f, "=")
		if !ok || k == "" || v == "" {
			return Block{}, false, fmt.Errorf("bad attribute %q in %q", f, info)
		}
		b.Attrs[k] = v
	}
	b.ID = b.Attrs["id"]
	if b.ID == "" && b.Kind != KindConstants {
		return Block{}, false, fmt.Errorf("%s block without an id", b.Kind)
	}
	return b, true, nil
}

// Block returns the block of the given kind and id.
func (s *Spec) Block(kind, id string) (Block, error) {
	for _, b := range s.Blocks {
		if b.Kind == kind && b.ID == id {
			return b, nil
		}
	}
	return Block{}, fmt.Errorf("%w: %s id=%s in %s", ErrNoBlock, kind, id, s.Path)
}

// IDs returns the ids of the blocks of kind, sorted.
func (s *Spec) IDs(kind string) []string {
	var out []string
	for _, b := range s.Blocks {
		if b.Kind == kind {
			out = append(out, b.ID)
		}
	}
	sort.Strings(out)
	return out
}

// Hex returns the bytes of the hex block id.
func (s *Spec) Hex(id string) ([]byte, error) {
	b, err := s.Block(KindHex, id)
	if err != nil {
		return nil, err
	}
	out, err := HexBytes(b.Body)
	if err != nil {
		return nil, fmt.Errorf("specdoc: hex block %s (line %d): %w", id, b.Line, err)
	}
	return out, nil
}

// Text returns the content of the text block id, without its final newline.
func (s *Spec) Text(id string) (string, error) {
	b, err := s.Block(KindText, id)
	if err != nil {
		return "", err
	}
	return strings.TrimSuffix(b.Body, "\n"), nil
}

// Diag returns the content of the cbor-diag block id, without its final
// newline.
func (s *Spec) Diag(id string) (string, error) {
	b, err := s.Block(KindDiag, id)
	if err != nil {
		return "", err
	}
	return strings.TrimSuffix(b.Body, "\n"), nil
}

// Constants returns the "name = value" lines of every constants block.
// Values keep their spelling (a string value keeps its quotes).
func (s *Spec) Constants() (map[string]string, error) {
	out := map[string]string{}
	for _, b := range s.Blocks {
		if b.Kind != KindConstants {
			continue
		}
		for i, l := range strings.Split(b.Body, "\n") {
			l = strings.TrimSpace(l)
			if c := strings.Index(l, " #"); c >= 0 {
				l = strings.TrimSpace(l[:c])
			}
			if l == "" || strings.HasPrefix(l, "#") {
				continue
			}
			k, v, ok := strings.Cut(l, "=")
			k, v = strings.TrimSpace(k), strings.TrimSpace(v)
			if !ok || k == "" || v == "" {
				return nil, fmt.Errorf("specdoc: constants block at line %d, line %d: %q is not name = value", b.Line, i+1, l)
			}
			if _, dup := out[k]; dup {
				return nil, fmt.Errorf("specdoc: constant %s listed twice", k)
			}
			out[k] = v
		}
	}
	return out, nil
}

// CompareConstants compares the constants whose names start with prefix
// with actual (name to value, spelled as WIRE.md spells it): every one
// listed must be in actual with the same value, and every one in actual
// must be listed. It returns one error per difference.
func (s *Spec) CompareConstants(prefix string, actual map[string]string) []error {
	listed, err := s.Constants()
	if err != nil {
		return []error{err}
	}
	var errs []error
	names := make([]string, 0, len(listed))
	for name := range listed {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if !strings.HasPrefix(name, prefix) {
			continue
		}
		got, ok := actual[name]
		switch {
		case !ok:
			errs = append(errs, fmt.Errorf("WIRE.md lists constant %s, which no test checks", name))
		case got != listed[name]:
			errs = append(errs, fmt.Errorf("WIRE.md says %s = %s, the code has %s", name, listed[name], got))
		}
	}
	names = names[:0]
	for name := range actual {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if _, ok := listed[name]; !ok {
			errs = append(errs, fmt.Errorf("constant %s = %s is not listed in WIRE.md", name, actual[name]))
		}
	}
	return errs
}

// HexBytes decodes the body of a hex block: hex digits with whitespace
// between them, and comments from '#' to the end of a line.
func HexBytes(body string) ([]byte, error) {
	var digits strings.Builder
	for _, l := range strings.Split(body, "\n") {
		if c := strings.IndexByte(l, '#'); c >= 0 {
			l = l[:c]
		}
		for _, f := range strings.Fields(l) {
			digits.WriteString(f)
		}
	}
	return hex.DecodeString(digits.String())
}

// FormatHex lays b out as lowercase hex, 32 bytes a line.
func FormatHex(b []byte) string {
	const perLine = 32
	var sb strings.Builder
	for i := 0; i < len(b); i += perLine {
		sb.WriteString(hex.EncodeToString(b[i:min(i+perLine, len(b))]))
		sb.WriteByte('\n')
	}
	return sb.String()
}

// SetBody replaces the body of the block of kind and id (which must exist)
// with body, in memory; Save writes the file.
func (s *Spec) SetBody(kind, id, body string) error {
	if body != "" && !strings.HasSuffix(body, "\n") {
		body += "\n"
	}
	for _, b := range s.Blocks {
		if b.Kind != kind || b.ID != id {
			continue
		}
		if b.Body == body {
			return nil
		}
		s.src = s.src[:b.start] + body + s.src[b.end:]
		ns, err := Parse(s.src)
		if err != nil {
			return err
		}
		ns.Path = s.Path
		*s = *ns
		return nil
	}
	return fmt.Errorf("%w: %s id=%s (add the block by hand first)", ErrNoBlock, kind, id)
}

// SetHex replaces the hex block id with b, keeping its comments only when
// its bytes are unchanged.
func (s *Spec) SetHex(id string, b []byte) error {
	if old, err := s.Hex(id); err == nil && string(old) == string(b) {
		return nil
	}
	return s.SetBody(KindHex, id, FormatHex(b))
}

// Save writes WIRE.md back.
func (s *Spec) Save() error {
	if s.Path == "" {
		return fmt.Errorf("specdoc: spec has no path")
	}
	if err := os.WriteFile(s.Path, []byte(s.src), 0o644); err != nil {
		return fmt.Errorf("specdoc: %w", err)
	}
	return nil
}
