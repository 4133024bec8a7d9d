package faultds

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
)

// ErrInjected is wrapped by every error the injectors of this package
// return; check it with errors.Is.
var ErrInjected = errors.New("faultds: injected fault")

// Injector decides whether a write operation fails. MaybeError returns nil
// to let op through, or the error op must fail with. It is called once per
// operation, from any goroutine.
type Injector interface {
	MaybeError(op Op) error
}

// InjectorFunc adapts a function to Injector.
type InjectorFunc func(Op) error

// MaybeError calls f(op).
func (f InjectorFunc) MaybeError(op Op) error { return f(op) }

// OnIndex fails the n-th operation it is asked about (1-based) with
// ErrInjected, and no other; n <= 0 never fails. Wrap it in If to count
// only some operations.
func OnIndex(n int64) Injector {
	var seen atomic.Int64
	return InjectorFunc(func(op Op) error {
		if i := seen.Add(1); n > 0 && i == n {
			return fmt.Errorf("%w: %s (operation #%d)", ErrInjected, op, i)
		}
		return nil
	})
}

// FromIndex fails the n-th operation it is asked about (1-based) and every
// later one with ErrInjected; n <= 0 never fails.
func FromIndex(n int64) Injector {
	var seen atomic.Int64
	return InjectorFunc(func(op Op) error {
		if i := seen.Add(1); n > 0 && i >= n {
			return fmt.Errorf("%w: %s (operation #%d)", ErrInjected, op, i)
		}
		return nil
	})
}

// If asks inj only about operations p selects and lets every other one
// through (so an OnIndex inside counts selected operations only).
func If(p Predicate, inj Injector) Injector {
	return InjectorFunc(func(op Op) error {
		if !p.match(op) {
			return nil
		}
		return inj.MaybeError(op)
	})
}

// Sticky fails as inj does until inj first fails; from then on it fails
// every operation without asking inj (a dead disk). Its later errors are
// never AfterApply errors: a dead disk applies nothing.
func Sticky(inj Injector) Injector {
	var (
		mu   sync.Mutex
		dead error
	)
	return InjectorFunc(func(op Op) error {
		mu.Lock()
		defer mu.Unlock()
		if dead != nil {
			return fmt.Errorf("%w: %s after an earlier fault (%v)", ErrInjected, op, dead)
		}
		if err := inj.MaybeError(op); err != nil {
			dead = err
			return err
		}
		return nil
	})
}

// AfterApply fails as inj does, but a Fail datastore applies each failing
// operation before it reports the error: the write reached the medium and
// the caller cannot know.
func AfterApply(inj Injector) Injector {
	return InjectorFunc(func(op Op) error {
		if err := inj.MaybeError(op); err != nil {
			return &appliedError{err}
		}
		return nil
	})
}

// appliedError marks an error whose operation is applied first.
type appliedError struct{ err error }

func (e *appliedError) Error() string { return e.err.Error() + " (applied)" }
func (e *appliedError) Unwrap() error { return e.err }

// Applied reports whether err came from AfterApply: the operation that
// returned it was applied.
func Applied(err error) bool {
	var a *appliedError
	return errors.As(err, &a)
}

// Switch is an Injector a test changes while the code under test runs. The
// zero Switch lets everything through. It is safe for concurrent use.
type Switch struct {
	inj atomic.Pointer[Injector]
}

// Set makes the Switch fail as inj does from now on (nil: never).
func (s *Switch) Set(inj Injector) {
	if inj == nil {
		s.inj.Store(nil)
		return
	}
	s.inj.Store(&inj)
}

// MaybeError asks the Injector last Set, if any.
func (s *Switch) MaybeError(op Op) error {
	if p := s.inj.Load(); p != nil {
		return (*p).MaybeError(op)
	}
	return nil
}

var _ Injector = (*Switch)(nil)
