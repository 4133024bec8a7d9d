package net

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"io"

	"github.com/libp2p/go-libp2p/core/pnet"
)

// ErrBadPSK is returned (wrapped, with the reason) by ParsePSK for a
// malformed swarm key.
var ErrBadPSK = errors.New("net: bad swarm key")

// maxPSKFileBytes bounds how much ParsePSK reads; a valid file is ~95 bytes.
const maxPSKFileBytes = 4096

// ParsePSK reads a private-network key in the libp2p swarm.key format:
//
//	/key/swarm/psk/1.0.0/
//	/base16/
//	<64 hex digits>
//
// Lines may end in "\n" or "\r\n"; surrounding blank space on each line and
// trailing blank lines are ignored. Anything else (other encodings, a key of
// the wrong length, extra content) is an error wrapping ErrBadPSK that says
// what is wrong. It is stricter than pnet.DecodeV1PSK, which ignores trailing
// garbage.
func ParsePSK(r io.Reader) (pnet.PSK, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxPSKFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("%w: read: %v", ErrBadPSK, err)
	}
	if len(data) > maxPSKFileBytes {
		return nil, fmt.Errorf("%w: file larger than %d bytes", ErrBadPSK, maxPSKFileBytes)
	}
	lines := bytes.Split(data, []byte("\n"))
	for i := range lines {
		lines[i] = bytes.TrimSpace(lines[i])
	}
	for len(lines) > 0 && len(lines[len(lines)-1]) == 0 {
		lines = lines[:len(lines)-1]
	}
	switch {
	case len(lines) == 0:
		return nil, fmt.Errorf("%w: empty file", ErrBadPSK)
	case string(lines[0]) != "/key/swarm/psk/1.0.0/":
		return nil, fmt.Errorf("%w: line 1 is %q, want \"/key/swarm/psk/1.0.0/\"", ErrBadPSK, clip(lines[0]))
	case len(lines) < 2:
		return nil, fmt.Errorf("%w: missing encoding line \"/base16/\"", ErrBadPSK)
	case string(lines[1]) != "/base16/":
		return nil, fmt.Errorf("%w: line 2 is %q, only \"/base16/\" is supported", ErrBadPSK, clip(lines[1]))
	case len(lines) < 3:
		return nil, fmt.Errorf("%w: missing key line (64 hex digits)", ErrBadPSK)
	case len(lines) > 3:
		return nil, fmt.Errorf("%w: unexpected content after the key on line 4", ErrBadPSK)
	}
	key := lines[2]
	if len(key) != 64 {
		return nil, fmt.Errorf("%w: key has %d characters, want 64 hex digits", ErrBadPSK, len(key))
	}
	psk := make([]byte, 32)
	if _, err := hex.Decode(psk, key); err != nil {
		return nil, fmt.Errorf("%w: key is not hex: %v", ErrBadPSK, err)
	}
	return pnet.PSK(psk), nil
}

// FormatPSK returns psk in the swarm.key format ParsePSK reads.
func FormatPSK(psk pnet.PSK) []byte {
	return fmt.Appendf(nil, "/key/swarm/psk/1.0.0/\n/base16/\n%s\n", hex.EncodeToString(psk))
}

func clip(b []byte) string {
	if len(b) > 40 {
		return string(b[:40]) + "…"
	}
	return string(b)
}
