package decmode

import (
	"errors"
	"testing"

	"github.com/fxamacker/cbor/v2"
)

func TestCache(t *testing.T) {
	builds := 0
	c := New(func(n int) (cbor.DecMode, error) {
		builds++
		if n < 0 {
			return nil, errors.New("bad limits")
		}
		return cbor.DecOptions{MaxArrayElements: 16 + n}.DecMode()
	})
	a, err := c.Get(1)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := c.Get(1)
	if a != b || builds != 1 {
		t.Fatalf("second Get built again (%d builds)", builds)
	}
	if _, err := c.Get(-1); err == nil {
		t.Fatal("build error not returned")
	}
	for i := range 2 * maxModes {
		if _, err := c.Get(100 + i); err != nil {
			t.Fatal(err)
		}
	}
	if len(c.m) > maxModes {
		t.Fatalf("cache holds %d decoders, bound %d", len(c.m), maxModes)
	}
}
