package net

import (
	"bytes"
	"math/rand/v2"
	"strconv"
	"testing"

	"github.com/klauspost/compress/zstd"
)

// The small-window encoder writes, for every frame it is given (up to its
// window), the bytes the big one writes: which encoder a frame goes
// through does not show on the wire.
func TestZstdSmallWindowSameBytes(t *testing.T) {
	big, err := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1), zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithWindowSize(zstdWindow))
	if err != nil {
		t.Fatal(err)
	}
	small, err := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1), zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithWindowSize(zstdSmallWindow))
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	var b []byte
	for len(b) < zstdSmallWindow {
		b = append(b, "k"...)
		b = strconv.AppendInt(b, int64(rng.IntN(1_000_000)), 10)
		b = append(b, byte(rng.IntN(256)))
	}
	b = b[:zstdSmallWindow]
	for _, n := range []int{compressMin, 4096, 256 << 10, zstdSmallWindow} {
		if x, y := big.EncodeAll(b[:n], nil), small.EncodeAll(b[:n], nil); !bytes.Equal(x, y) {
			t.Fatalf("%d bytes: the encoders differ (%d and %d bytes)", n, len(x), len(y))
		}
	}
}
