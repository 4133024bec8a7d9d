package faultds

import (
	"errors"
	"slices"
	"testing"
)

// fails asks inj about one operation of each of kinds in turn and returns
// the (1-based) positions of those it failed.
func fails(inj Injector, kinds ...Kind) []int {
	var out []int
	for i, k := range kinds {
		if err := inj.MaybeError(Op{Kind: k}); err != nil {
			if !errors.Is(err, ErrInjected) {
				panic(err)
			}
			out = append(out, i+1)
		}
	}
	return out
}

func puts(n int) []Kind {
	out := make([]Kind, n)
	for i := range out {
		out[i] = OpPut
	}
	return out
}

func TestInjectors(t *testing.T) {
	mixed := []Kind{OpPut, OpSync, OpCommit, OpSync, OpSync, OpPut}
	for _, c := range []struct {
		name  string
		inj   Injector
		kinds []Kind
		want  []int
	}{
		{"OnIndex", OnIndex(3), puts(5), []int{3}},
		{"OnIndex(0) never", OnIndex(0), puts(5), nil},
		{"FromIndex", FromIndex(4), puts(6), []int{4, 5, 6}},
		{"FromIndex(0) never", FromIndex(0), puts(3), nil},
		{"If counts selected only", If(Kinds(OpSync), OnIndex(2)), mixed, []int{4}},
		{"Sticky", Sticky(OnIndex(2)), puts(4), []int{2, 3, 4}},
		{"Sticky of If", Sticky(If(Kinds(OpCommit), OnIndex(1))), mixed, []int{3, 4, 5, 6}},
	} {
		if got := fails(c.inj, c.kinds...); !slices.Equal(got, c.want) {
			t.Errorf("%s: failed %v, want %v", c.name, got, c.want)
		}
	}
}

func TestAfterApply(t *testing.T) {
	inj := Sticky(AfterApply(OnIndex(1)))
	first := inj.MaybeError(Op{Kind: OpPut})
	if !errors.Is(first, ErrInjected) || !Applied(first) {
		t.Fatalf("first: %v (applied %v)", first, Applied(first))
	}
	later := inj.MaybeError(Op{Kind: OpPut})
	if !errors.Is(later, ErrInjected) || Applied(later) {
		t.Fatalf("a dead disk applies nothing: %v (applied %v)", later, Applied(later))
	}
	if Applied(ErrInjected) || Applied(nil) {
		t.Fatal("Applied of a plain error")
	}
}

func TestSwitch(t *testing.T) {
	var sw Switch
	if err := sw.MaybeError(Op{Kind: OpSync}); err != nil {
		t.Fatalf("zero Switch: %v", err)
	}
	sw.Set(FromIndex(1))
	if err := sw.MaybeError(Op{Kind: OpSync}); !errors.Is(err, ErrInjected) {
		t.Fatalf("switched on: %v", err)
	}
	sw.Set(nil)
	if err := sw.MaybeError(Op{Kind: OpSync}); err != nil {
		t.Fatalf("switched off: %v", err)
	}
}
