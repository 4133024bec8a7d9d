package concord

import (
	"context"
	"strconv"
	"testing"
)

// BenchmarkLocalSet: one Set after the other on a node with a memory
// store and no peers — the local write path alone (apply, sign, persist,
// acknowledge), as each writer of the converge scenario takes it.
func BenchmarkLocalSet(b *testing.B) {
	n := testNode(b, "")
	d := openDoc(b, n, "local")
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if err := d.Set(ctx, []string{"k" + strconv.Itoa(i)}, i); err != nil {
			b.Fatal(err)
		}
	}
}
