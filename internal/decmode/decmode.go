package decmode

import (
	"sync"

	"github.com/fxamacker/cbor/v2"
)

// maxModes bounds a cache. Limits are constants of the caller's code, so a
// handful is normal; past the bound decoders are built without being kept.
const maxModes = 64

// Cache maps limits of type L to their decoder. It is safe for concurrent
// use.
type Cache[L comparable] struct {
	build func(L) (cbor.DecMode, error)
	mu    sync.RWMutex
	m     map[L]cbor.DecMode
}

// New returns a cache whose decoders come from build.
func New[L comparable](build func(L) (cbor.DecMode, error)) *Cache[L] {
	return &Cache[L]{build: build, m: map[L]cbor.DecMode{}}
}

// Get returns the decoder for lim, building it the first time.
func (c *Cache[L]) Get(lim L) (cbor.DecMode, error) {
	c.mu.RLock()
	dm, ok := c.m[lim]
	c.mu.RUnlock()
	if ok {
		return dm, nil
	}
	dm, err := c.build(lim)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if len(c.m) < maxModes {
		c.m[lim] = dm
	}
	c.mu.Unlock()
	return dm, nil
}
