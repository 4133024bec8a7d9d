package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/concord-p2p/concord"
	"github.com/concord-p2p/concord/store"
)

const idUsage = `Usage: concord id [--data DIR]

Print the peer ID of the node kept in DIR, creating its key (and the
directory) if there is none.

Flags:
  --data DIR   data directory (default ./concord-data)

Exit codes: 0 success, 1 runtime error, 2 usage error.
`

func runID(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("id", flag.ContinueOnError)
	data := fs.String("data", concord.DefaultConfig().DataDir, "")
	if err := parseFlags(fs, idUsage, args, stdout, stderr); err != nil {
		return err
	}
	id, err := peerIDOf(*data)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, id)
	return nil
}

// peerIDOf opens the store in dir and returns its node's peer ID.
func peerIDOf(dir string) (id peer.ID, err error) {
	st, err := store.OpenPebble(dir, store.DefaultOptions())
	if err != nil {
		return "", fmt.Errorf("open data dir %s: %w", dir, err)
	}
	defer func() {
		if cerr := st.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("close data dir %s: %w", dir, cerr)
		}
	}()
	key, err := concord.LoadOrCreateKey(context.Background(), st)
	if err != nil {
		return "", err
	}
	id, err = peer.IDFromPrivateKey(key)
	if err != nil {
		return "", fmt.Errorf("peer ID: %w", err)
	}
	return id, nil
}
