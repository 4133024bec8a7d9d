package concord

import (
	"context"
	"testing"
	"time"
)

func TestThreePeersConverge(t *testing.T) {
	a, b, c := testNode(t, ""), testNode(t, ""), testNode(t, "")
	connect(t, b, a)
	connect(t, c, a)
	da, db, dc := openDoc(t, a, "notes"), openDoc(t, b, "notes"), openDoc(t, c, "notes")
	ctx := context.Background()
	if err := da.Set(ctx, []string{"title"}, "hello"); err != nil {
		t.Fatal(err)
	}
	if err := db.Inc(ctx, []string{"count"}, 2); err != nil {
		t.Fatal(err)
	}
	if err := dc.Add(ctx, []string{"tags"}, "x"); err != nil {
		t.Fatal(err)
	}
	waitConverged(t, 10*time.Second, da, db, dc)
	if got := string(da.JSON()); got != `{"count":2,"tags":["x"],"title":"hello"}` {
		t.Fatalf("view %s", got)
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for _, d := range []*Doc{da, db, dc} {
		if err := d.WaitAcked(wctx); err != nil {
			t.Fatal(err)
		}
	}
}
