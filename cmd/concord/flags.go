package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/pnet"

	cnet "github.com/concord-p2p/concord/net"
)

// listFlag is a repeatable string flag.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }

func (l *listFlag) Set(s string) error {
	if s == "" {
		return errors.New("empty value")
	}
	*l = append(*l, s)
	return nil
}

// parseFlags parses args with fs. On --help it prints usage to stdout and
// returns errHelp; on a bad flag it prints the problem and the usage to
// stderr and returns a usageError.
func parseFlags(fs *flag.FlagSet, usage string, args []string, stdout, stderr io.Writer) error {
	fs.SetOutput(stderr)
	fs.Usage = func() {}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, usage)
			return errHelp
		}
		// The flag package printed what was wrong.
		fmt.Fprint(stderr, "\n"+usage)
		return usageError{err}
	}
	if fs.NArg() > 0 {
		return badUsage(stderr, usage, fmt.Errorf("unexpected argument %q", fs.Arg(0)))
	}
	return nil
}

// badUsage prints err and the usage to stderr and returns a usageError.
func badUsage(stderr io.Writer, usage string, err error) error {
	fmt.Fprintf(stderr, "concord: %v\n\n%s", err, usage)
	return usageError{err}
}

// readPSK reads a swarm.key file.
func readPSK(path string) (pnet.PSK, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("--psk: %w", err)
	}
	defer f.Close()
	psk, err := cnet.ParsePSK(f)
	if err != nil {
		return nil, fmt.Errorf("--psk %s: %w", path, err)
	}
	return psk, nil
}

// readWriters reads a writers file: one peer ID per line; blank lines and
// "#" comments (whole-line or trailing) are ignored. A file naming nobody is
// an error (it would refuse every delta, this peer's own included).
func readWriters(path string) ([]peer.ID, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("--writers: %w", err)
	}
	defer f.Close()
	var ids []peer.ID
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		s, _, _ := strings.Cut(sc.Text(), "#")
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		id, err := peer.Decode(s)
		if err != nil {
			return nil, fmt.Errorf("--writers %s:%d: %q is not a peer ID: %v", path, line, s, err)
		}
		ids = append(ids, id)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("--writers %s: %w", path, err)
	}
	if len(ids) == 0 {
		return nil, fmt.Errorf("--writers %s: names no peer ID", path)
	}
	return ids, nil
}

// readToken reads an --http-token file: one line, the token (surrounding
// white space and the line end are dropped). An empty file, a second line
// or a token with spaces or control characters is an error.
func readToken(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("--http-token: %w", err)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", fmt.Errorf("--http-token %s: the file is empty", path)
	}
	if strings.ContainsFunc(tok, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		return "", fmt.Errorf("--http-token %s: want one line holding the token, without spaces", path)
	}
	return tok, nil
}
