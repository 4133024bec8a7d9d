package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"
)

// Config is the service's configuration, decoded from the document's JSON
// view.
type Config struct {
	Interval time.Duration
	Greeting string
	Features []string
}

// DefaultConfig applies to keys the document does not hold.
func DefaultConfig() Config {
	return Config{Interval: time.Second, Greeting: "hello"}
}

// configView is the document's shape.
type configView struct {
	IntervalMS *int64   `json:"interval_ms"`
	Greeting   *string  `json:"greeting"`
	Features   []string `json:"features"`
}

// ParseConfig decodes a document view; missing keys take their defaults.
func ParseConfig(view json.RawMessage) (Config, error) {
	var v configView
	if err := json.Unmarshal(view, &v); err != nil {
		return Config{}, fmt.Errorf("config: %w", err)
	}
	c := DefaultConfig()
	if v.IntervalMS != nil {
		if *v.IntervalMS < 10 || *v.IntervalMS > 3_600_000 {
			return Config{}, errors.New("config: interval_ms must be between 10 and 3600000")
		}
		c.Interval = time.Duration(*v.IntervalMS) * time.Millisecond
	}
	if v.Greeting != nil {
		c.Greeting = *v.Greeting
	}
	c.Features = slices.Sorted(slices.Values(v.Features))
	return c, nil
}

// Equal reports whether two configurations are the same.
func (c Config) Equal(o Config) bool {
	return c.Interval == o.Interval && c.Greeting == o.Greeting && slices.Equal(c.Features, o.Features)
}
